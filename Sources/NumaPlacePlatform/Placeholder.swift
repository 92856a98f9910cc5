// NumaPlacePlatform
