// NumaPlaceDaemon
