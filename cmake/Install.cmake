# `cmake --install`: the libraries and their public headers, a CMake package (callbackd::engine,
# callbackd::sqlite, callbackd::postgres), the daemon, its systemd unit, example configuration
# and README. Included from the top-level CMakeLists.txt after the targets exist.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CALLBACKD_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/callbackd"
    CACHE STRING "Where callbackdConfig.cmake is installed (relative to the prefix)")

# Names as the package exports them: callbackd::engine, callbackd::sqlite, callbackd::postgres.
set_target_properties(callbackd_headers PROPERTIES EXPORT_NAME headers)
set_target_properties(callbackd_engine PROPERTIES EXPORT_NAME engine)
set_target_properties(callbackd_storage PROPERTIES EXPORT_NAME sqlite)
set_target_properties(callbackd_storage_postgres PROPERTIES EXPORT_NAME postgres)

# A sanitized build installs sanitized static libraries: whoever links them needs the runtime.
if(CALLBACKD_SANITIZE)
  foreach(library callbackd_engine callbackd_storage callbackd_storage_postgres)
    target_link_options(${library} INTERFACE $<INSTALL_INTERFACE:-fsanitize=address,undefined>)
  endforeach()
endif()

# Public headers only: each library's include/callbackd/ (nothing from its private sources).
install(DIRECTORY ${PROJECT_SOURCE_DIR}/engine/include/callbackd
                  ${PROJECT_SOURCE_DIR}/storage/sqlite/include/callbackd
                  ${PROJECT_SOURCE_DIR}/storage/postgres/include/callbackd
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT devel
        FILES_MATCHING PATTERN "*.h")

install(TARGETS callbackd_headers callbackd_engine callbackd_storage
        EXPORT callbackdTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT devel
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# PostgreSQL in a file of its own, loaded only for COMPONENTS postgres, so an embedder of the
# SQLite store needs no libpq.
install(TARGETS callbackd_storage_postgres
        EXPORT callbackdPostgresTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT devel
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT callbackdTargets NAMESPACE callbackd:: DESTINATION ${CALLBACKD_INSTALL_CMAKEDIR}
        COMPONENT devel)
install(EXPORT callbackdPostgresTargets NAMESPACE callbackd::
        DESTINATION ${CALLBACKD_INSTALL_CMAKEDIR} COMPONENT devel)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/callbackdConfig.cmake.in
  ${PROJECT_BINARY_DIR}/callbackdConfig.cmake
  INSTALL_DESTINATION ${CALLBACKD_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/callbackdConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/callbackdConfig.cmake
              ${PROJECT_BINARY_DIR}/callbackdConfigVersion.cmake
        DESTINATION ${CALLBACKD_INSTALL_CMAKEDIR} COMPONENT devel)

install(TARGETS callbackd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT daemon)
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR}
        COMPONENT daemon)

# The unit and the configuration go where systemd and the unit look for them, decided when
# installing (the prefix may be given then): under /usr they are /lib/systemd/system and
# /etc/callbackd, as Debian 12 has them; under any other prefix both stay inside it
# (<prefix>/lib/systemd/system is on systemd's search path for /usr/local), so installing into
# a scratch prefix never writes outside it. The unit's paths follow.
set(install_unit_and_config [[
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(callbackd_etc "/etc")
    set(callbackd_unit_dir "/lib/systemd/system")
  else()
    set(callbackd_etc "${CMAKE_INSTALL_PREFIX}/etc")
    set(callbackd_unit_dir "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
  endif()
  file(READ "@unit@" unit)
  string(REPLACE "\nExecStart=/usr/bin/callbackd serve --config /etc/callbackd/"
         "\nExecStart=@bindir@/callbackd serve --config ${callbackd_etc}/callbackd/" unit "${unit}")
  string(REPLACE "\nEnvironmentFile=-/etc/callbackd/"
         "\nEnvironmentFile=-${callbackd_etc}/callbackd/" unit "${unit}")
  # file(INSTALL) adds $DESTDIR itself. One staging file per destination: cpack and a scratch
  # install may run at once.
  string(SHA1 destination "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}")
  set(staged "@binary_dir@/install-staging/${destination}/callbackd.service")
  file(WRITE "${staged}" "${unit}")
  file(INSTALL "${staged}" DESTINATION "${callbackd_unit_dir}"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  file(INSTALL "@config@" DESTINATION "${callbackd_etc}/callbackd"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
]])
set(unit ${PROJECT_SOURCE_DIR}/deploy/callbackd.service)
set(config ${PROJECT_SOURCE_DIR}/deploy/callbackd.toml)
set(binary_dir ${PROJECT_BINARY_DIR})
set(bindir "\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}")
string(CONFIGURE "${install_unit_and_config}" install_unit_and_config @ONLY)
install(CODE "${install_unit_and_config}" COMPONENT daemon)
