#include "np_shim.h"
