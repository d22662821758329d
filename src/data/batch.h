// Batch is public (include/embark/batch.h): the parsers fill it, the models
// read it, and a caller of the API may build one.
#pragma once

#include "embark/batch.h"
