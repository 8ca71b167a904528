# `cpack -G DEB` in the build directory: two Debian packages from the install rules
# (cmake/Install.cmake):
#   callbackd          the daemon in /usr/bin, its unit in /lib/systemd/system, its configuration
#                      in /etc/callbackd (a conffile); the maintainer scripts in deploy/debian/
#                      add the `callbackd` system user and start the service under systemd.
#   libcallbackd-dev   the static libraries, public headers and CMake package, for embedders.
# Depends are computed by dpkg-shlibdeps (package dpkg-dev).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME callbackd)
set(CPACK_PACKAGE_VENDOR callbackd)
set(CPACK_PACKAGE_CONTACT "callbackd maintainers <callbackd@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "reliable, signed callback (webhook) delivery")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Install with DESTDIR and the real prefix (whatever this build's own prefix is), so the rules
# see /usr and put the unit and the configuration in /lib/systemd/system and /etc.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL daemon devel)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_DAEMON_PACKAGE_NAME callbackd)
set(CPACK_COMPONENT_DAEMON_DESCRIPTION
    "reliable, signed callback (webhook) delivery daemon\n\
Stores finished tasks' results durably and POSTs them to customers' callback URLs with an\n\
HMAC-SHA256 signature, retrying on a schedule; HTTP API and CLI on loopback.")
# useradd and userdel (postinst, postrm) come from passwd.
set(CPACK_DEBIAN_DAEMON_PACKAGE_DEPENDS "passwd")
set(debian_scripts ${PROJECT_BINARY_DIR}/debian)
foreach(script postinst prerm postrm)
  configure_file(${PROJECT_SOURCE_DIR}/deploy/debian/${script} ${debian_scripts}/${script}
                 COPYONLY FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                 GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
endforeach()
file(WRITE ${debian_scripts}/conffiles "/etc/callbackd/callbackd.toml\n")
set(CPACK_DEBIAN_DAEMON_PACKAGE_CONTROL_EXTRA
    ${debian_scripts}/postinst ${debian_scripts}/prerm ${debian_scripts}/postrm
    ${debian_scripts}/conffiles)

set(CPACK_DEBIAN_DEVEL_PACKAGE_NAME libcallbackd-dev)
set(CPACK_DEBIAN_DEVEL_PACKAGE_SECTION libdevel)
set(CPACK_COMPONENT_DEVEL_DESCRIPTION
    "callbackd delivery engine, static libraries and headers\n\
The engine, its SQLite and PostgreSQL stores and a CMake package: find_package(callbackd)\n\
and link callbackd::engine and callbackd::sqlite (or callbackd::postgres).")
set(CPACK_DEBIAN_DEVEL_PACKAGE_DEPENDS
    "libcurl4-openssl-dev, libssl-dev, libsqlite3-dev, libspdlog-dev, nlohmann-json3-dev, \
libboost-dev, libpq-dev")

include(CPack)
