# xgrammar's C++ core (tools/fetch_xgrammar.sh puts its source in
# third_party/xgrammar/): JSON-schema, regex and EBNF grammars compiled
# against the vocabulary, and per-step token masks. Built here rather than
# with its own CMakeLists, which adds -Werror and -flto to every file and
# the Python bindings; only runtime/grammar.cc includes its headers.
set(WEFT_XGRAMMAR_DIR ${CMAKE_SOURCE_DIR}/third_party/xgrammar)
if(NOT EXISTS ${WEFT_XGRAMMAR_DIR}/include/xgrammar/xgrammar.h)
  message(FATAL_ERROR
    "weft: xgrammar's source is missing; run tools/fetch_xgrammar.sh "
    "(tools/setup.sh does)")
endif()
file(GLOB_RECURSE WEFT_XGRAMMAR_SOURCES CONFIGURE_DEPENDS
     ${WEFT_XGRAMMAR_DIR}/cpp/*.cc)
# tvm_ffi/: the bindings for TVM's FFI, not the library.
list(FILTER WEFT_XGRAMMAR_SOURCES EXCLUDE REGEX "/cpp/tvm_ffi/")
add_library(weft_xgrammar STATIC ${WEFT_XGRAMMAR_SOURCES})
target_include_directories(weft_xgrammar PUBLIC ${WEFT_XGRAMMAR_DIR}/include)
target_include_directories(weft_xgrammar SYSTEM PUBLIC
  ${WEFT_XGRAMMAR_DIR}/3rdparty/picojson
  ${WEFT_XGRAMMAR_DIR}/3rdparty/dlpack/include)
target_compile_definitions(weft_xgrammar PUBLIC XGRAMMAR_ENABLE_CPPTRACE=0)
target_link_libraries(weft_xgrammar PRIVATE Threads::Threads)
# Its own standard (C++17) and no warnings of ours: it is not our code.
set_target_properties(weft_xgrammar PROPERTIES
  CXX_STANDARD 17 POSITION_INDEPENDENT_CODE ON)
target_compile_options(weft_xgrammar PRIVATE -w)
