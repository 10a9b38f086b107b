# Included at `project(llama_cpp)` through CMAKE_PROJECT_llama_cpp_INCLUDE (see build_llama_cpp.py).
#
# With GGML_BACKEND_DL and GGML_CPU_ALL_VARIANTS, ggml builds one CPU backend module per CPU
# generation (ggml-cpu-haswell, ggml-cpu-skylakex, ...) and picks the best one for the host at
# load time. llama-cpp-python's CMakeLists installs only a target named `ggml-cpu`, so the wheel
# would ship no CPU backend at all. The targets do not exist yet when this file is read, so the
# install rules are deferred to the end of the top-level CMakeLists.
function(gemma_install_cpu_variants)
  get_property(ggml_targets DIRECTORY "${CMAKE_SOURCE_DIR}/vendor/llama.cpp/ggml/src"
               PROPERTY BUILDSYSTEM_TARGETS)
  set(installed "")
  foreach(target IN LISTS ggml_targets)
    if(target MATCHES "^ggml-cpu-")
      llama_cpp_python_install_target(${target})
      list(APPEND installed ${target})
    endif()
  endforeach()
  message(STATUS "gemma-service: installing CPU backend variants: ${installed}")
endfunction()
cmake_language(DEFER CALL gemma_install_cpu_variants)
