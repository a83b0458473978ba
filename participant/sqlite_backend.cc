#include "participant/backend.h"
