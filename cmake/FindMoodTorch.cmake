# Locate libtorch in the documented order and fail with a useful message.
# Sets MOOD_TORCH_SOURCE (where it came from) and MOOD_TORCH_VERSION.

set(_mood_candidates "")
set(_mood_searched "")

# 1. Explicit locations.
foreach(_var LIBTORCH Torch_DIR)
  if(DEFINED ${_var} AND NOT "${${_var}}" STREQUAL "")
    list(APPEND _mood_candidates "${${_var}}")
    list(APPEND _mood_searched "${_var}=${${_var}} (CMake variable)")
  elseif(DEFINED ENV{${_var}} AND NOT "$ENV{${_var}}" STREQUAL "")
    list(APPEND _mood_candidates "$ENV{${_var}}")
    list(APPEND _mood_searched "${_var}=$ENV{${_var}} (environment)")
  endif()
endforeach()

# 2. An installed PyTorch (pip/conda wheels ship a full libtorch with CMake config).
set(_mood_pythons "")
if(DEFINED ENV{MOOD_PYTHON})
  list(APPEND _mood_pythons "$ENV{MOOD_PYTHON}")
endif()
find_program(_mood_path_python NAMES python3 python)
if(_mood_path_python)
  list(APPEND _mood_pythons "${_mood_path_python}")
endif()
foreach(_py ${_mood_pythons})
  execute_process(
    COMMAND "${_py}" -c "import torch, sys; sys.stdout.write(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _mood_py_prefix RESULT_VARIABLE _mood_py_rc ERROR_QUIET TIMEOUT 60)
  if(_mood_py_rc EQUAL 0 AND EXISTS "${_mood_py_prefix}/Torch/TorchConfig.cmake")
    list(APPEND _mood_candidates "${_mood_py_prefix}")
    list(APPEND _mood_searched "${_py}: torch.utils.cmake_prefix_path = ${_mood_py_prefix}")
  else()
    list(APPEND _mood_searched "${_py}: no PyTorch with a CMake config")
  endif()
endforeach()

# 3. Debian's libtorch-dev.
list(APPEND _mood_candidates "/usr/lib/x86_64-linux-gnu/cmake/Torch" "/usr/lib/aarch64-linux-gnu/cmake/Torch")
list(APPEND _mood_searched "/usr/lib/<triplet>/cmake/Torch (Debian libtorch-dev)")

set(Torch_FOUND FALSE)
foreach(_cand ${_mood_candidates})
  # Accept a libtorch root, a share/cmake prefix, or the Torch config folder itself.
  foreach(_dir "${_cand}" "${_cand}/Torch" "${_cand}/share/cmake/Torch")
    if(EXISTS "${_dir}/TorchConfig.cmake")
      set(Torch_DIR "${_dir}" CACHE PATH "libtorch CMake config" FORCE)
      find_package(Torch CONFIG QUIET NO_DEFAULT_PATH PATHS "${_dir}")
      if(Torch_FOUND)
        set(MOOD_TORCH_SOURCE "${_dir}")
        break()
      endif()
    endif()
  endforeach()
  if(Torch_FOUND)
    break()
  endif()
endforeach()

if(NOT Torch_FOUND)
  string(REPLACE ";" "\n    " _mood_searched_text "${_mood_searched}")
  message(FATAL_ERROR
    "mood-ood: libtorch not found. Searched, in order:\n    ${_mood_searched_text}\n"
    "Fix it with one of:\n"
    "    sudo apt-get install libtorch-dev libgloo-dev      # Debian/Ubuntu CPU build\n"
    "    LIBTORCH=\"$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')\" npm run build:native   # use an installed PyTorch (CUDA)\n"
    "    LIBTORCH=/path/to/libtorch npm run build:native     # an unpacked libtorch zip\n")
endif()

set(MOOD_TORCH_VERSION "${Torch_VERSION}")
if(NOT MOOD_TORCH_VERSION)
  set(MOOD_TORCH_VERSION "unknown")
endif()
get_filename_component(MOOD_TORCH_LIBDIR "${TORCH_LIBRARY}" DIRECTORY)
message(STATUS "mood-ood: libtorch ${MOOD_TORCH_VERSION} from ${MOOD_TORCH_SOURCE} (libs in ${MOOD_TORCH_LIBDIR})")

# Gloo (c10d CPU backend) needs its headers; Debian ships them in libgloo-dev.
include(CheckIncludeFileCXX)
set(CMAKE_REQUIRED_INCLUDES ${TORCH_INCLUDE_DIRS})
set(CMAKE_REQUIRED_FLAGS "${TORCH_CXX_FLAGS} -std=c++17")
check_include_file_cxx("gloo/config.h" MOOD_HAVE_GLOO_HEADERS)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_INCLUDES)

# NCCL (c10d's CUDA backend) is compiled in when the libtorch is a CUDA build that ships
# ProcessGroupNCCL.hpp and nccl.h can be found. libtorch does not ship nccl.h: take it from
# NCCL_INCLUDE_DIR / MOOD_NCCL_INCLUDE_DIR, or from the nvidia-nccl wheel next to a pip PyTorch
# (site-packages/nvidia/nccl/include, i.e. <torch>/lib/../../nvidia/nccl/include).
set(MOOD_HAVE_NCCL OFF)
if(EXISTS "${MOOD_TORCH_LIBDIR}/libtorch_cuda.so")
  find_file(_mood_pg_nccl torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp PATHS ${TORCH_INCLUDE_DIRS} NO_DEFAULT_PATH)
  find_path(MOOD_NCCL_INCLUDE_DIR nccl.h
    HINTS "$ENV{MOOD_NCCL_INCLUDE_DIR}" "$ENV{NCCL_INCLUDE_DIR}" "${MOOD_TORCH_LIBDIR}/../../nvidia/nccl/include"
          /usr/include /usr/local/cuda/include)
  if(_mood_pg_nccl AND MOOD_NCCL_INCLUDE_DIR)
    set(MOOD_HAVE_NCCL ON)
    message(STATUS "mood-ood: NCCL backend on (nccl.h in ${MOOD_NCCL_INCLUDE_DIR})")
  else()
    message(STATUS "mood-ood: CUDA libtorch without a usable NCCL (ProcessGroupNCCL.hpp: ${_mood_pg_nccl}, nccl.h: ${MOOD_NCCL_INCLUDE_DIR}); distributed GPU training unavailable, set NCCL_INCLUDE_DIR")
  endif()
endif()
