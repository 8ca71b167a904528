# callbackd_embed_files(<target> <function> BASE <dir> FILES <file>...)
# Compiles files into <target>: a generated source defines
#   std::span<const callbackd::EmbeddedFile> callbackd::<function>();
# (service/embedded_files.h), each file named by its path relative to BASE. Regenerated when a
# file changes; nothing is read at run time, so the daemon serves them without a data directory.
set(_callbackd_embed_script ${CMAKE_CURRENT_LIST_DIR}/embed_files_generate.cmake)

function(callbackd_embed_files target function)
  cmake_parse_arguments(PARSE_ARGV 2 EMBED "" "BASE" "FILES")
  set(output ${CMAKE_CURRENT_BINARY_DIR}/${function}.cc)
  set(absolute_files "")
  foreach(file ${EMBED_FILES})
    get_filename_component(path ${file} ABSOLUTE BASE_DIR ${EMBED_BASE})
    list(APPEND absolute_files ${path})
  endforeach()
  # The list travels as one argument with '|' between files (';' would split it).
  string(REPLACE ";" "|" joined "${absolute_files}")
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${CMAKE_COMMAND} -DOUTPUT=${output} -DFUNCTION=${function} -DBASE=${EMBED_BASE}
            "-DFILES=${joined}" -P ${_callbackd_embed_script}
    DEPENDS ${absolute_files} ${_callbackd_embed_script}
    COMMENT "Embedding ${function}: ${EMBED_FILES}"
    VERBATIM)
  target_sources(${target} PRIVATE ${output})
endfunction()
