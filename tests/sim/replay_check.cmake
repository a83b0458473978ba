# Runs each seed in two separate processes and fails unless the two
# histories are byte-identical (no address, thread or real-time dependence).
# SIM_ARGS: more arguments for each run (e.g. --ha).
string(REPLACE "," ";" SEEDS "${SEEDS}")
foreach(seed ${SEEDS})
  execute_process(COMMAND ${SIM} ${SIM_ARGS} --seed ${seed}
                  OUTPUT_VARIABLE first RESULT_VARIABLE rc1)
  execute_process(COMMAND ${SIM} ${SIM_ARGS} --seed ${seed}
                  OUTPUT_VARIABLE second RESULT_VARIABLE rc2)
  string(REGEX REPLACE "seconds=[0-9.]+" "" first "${first}")
  string(REGEX REPLACE "seconds=[0-9.]+" "" second "${second}")
  if(NOT first STREQUAL second)
    message(FATAL_ERROR "seed ${seed}: two runs gave different histories")
  endif()
  string(LENGTH "${first}" length)
  message(STATUS "seed ${seed}: identical histories (${length} bytes, exit ${rc1})")
endforeach()
