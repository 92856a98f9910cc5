// NumaPlaceProtocol
