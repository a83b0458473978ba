// TempDir lives with the cluster library (pact-chaos-bank uses it too).
#pragma once

#include "cluster/temp_dir.h"
