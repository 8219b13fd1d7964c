# gqa_add_lto_blob(TARGET t SOURCE file.cu SYMBOL name): compiles file.cu to LTO IR for Hopper (sm_90a; relocatable
# device code, never machine code) and adds to t a generated source that places it in read-only data between the
# symbols `name` and `name_end`. Used for device code linked with attention programs at run time (nvJitLink).
function(gqa_add_lto_blob)
  cmake_parse_arguments(B "" "TARGET;SOURCE;SYMBOL" "" ${ARGN})
  get_filename_component(name ${B_SOURCE} NAME_WE)
  set(fatbin ${CMAKE_CURRENT_BINARY_DIR}/${name}.fatbin)
  add_custom_command(
    OUTPUT ${fatbin}
    COMMAND ${CMAKE_CUDA_COMPILER} -std=c++17 -O3 -rdc=true -fatbin -gencode=arch=compute_90a,code=lto_90a
            -I${PROJECT_SOURCE_DIR}/src -I${PROJECT_SOURCE_DIR}/include -MD -MF ${fatbin}.d
            ${CMAKE_CURRENT_SOURCE_DIR}/${B_SOURCE} -o ${fatbin}
    DEPENDS ${B_SOURCE}
    DEPFILE ${fatbin}.d
    COMMENT "LTO IR of ${B_SOURCE}"
    VERBATIM)
  set(GQA_LTO_SOURCE ${B_SOURCE})
  set(GQA_LTO_SYMBOL ${B_SYMBOL})
  set(GQA_LTO_PATH ${fatbin})
  configure_file(${PROJECT_SOURCE_DIR}/cmake/lto_blob.cpp.in ${CMAKE_CURRENT_BINARY_DIR}/${name}_blob.cpp @ONLY)
  set_source_files_properties(${CMAKE_CURRENT_BINARY_DIR}/${name}_blob.cpp PROPERTIES OBJECT_DEPENDS ${fatbin})
  target_sources(${B_TARGET} PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/${name}_blob.cpp)
endfunction()
