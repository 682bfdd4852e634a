# CPack's pre-build script for the Debian package (CPACK_PRE_BUILD_SCRIPTS
# in CMakeLists.txt): runs on the staged tree after `install()` and before
# the .deb is made, for what only the package has. The unit runs as the
# package's static `reconciler` user (postinst) instead of a DynamicUser,
# reads /etc/reconciler/reconciler.yaml, and starts without the secrets
# file too (EnvironmentFile=-); /etc/reconciler gets the example
# configuration and the secrets file (conffiles); the man page is gzipped
# as Debian ships them.
set(src "${CPACK_RECONCILER_SOURCE_DIR}")
file(GLOB_RECURSE units "${CPACK_TEMPORARY_INSTALL_DIRECTORY}/*/reconciler.service")
list(LENGTH units n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "stage.cmake: expected one staged reconciler.service, found: ${units}")
endif()
get_filename_component(unit_dir "${units}" DIRECTORY)
string(REGEX REPLACE "/usr/lib/systemd/system$" "" root "${unit_dir}")
if(root STREQUAL unit_dir)
  message(FATAL_ERROR "stage.cmake: the unit is not under /usr/lib/systemd/system: ${units}")
endif()
file(READ "${units}" unit)
string(REPLACE "DynamicUser=yes\n" "" unit "${unit}")
string(REPLACE "EnvironmentFile=/etc/reconciler/env\n"
       "EnvironmentFile=-/etc/reconciler/env\nEnvironment=RECONCILER_CONFIG=/etc/reconciler/reconciler.yaml\n"
       unit "${unit}")
string(REGEX REPLACE "Install \\(README.md[^\n]*\n(#[^\n]*\n)*"
       "Installed by the Debian package (README.md,\n# \"Install\"):\n#   sudoedit /etc/reconciler/env /etc/reconciler/reconciler.yaml\n#   sudo systemctl enable --now reconciler\n"
       unit "${unit}")
file(WRITE "${units}" "${unit}")
file(COPY "${src}/tools/deb/reconciler.yaml" DESTINATION "${root}/etc/reconciler"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(COPY "${src}/tools/deb/env" DESTINATION "${root}/etc/reconciler"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
file(GLOB pages "${root}/usr/share/man/man1/reconciler.1")
foreach(p ${pages})
  execute_process(COMMAND gzip -9nf "${p}" RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "stage.cmake: gzip ${p} failed")
  endif()
endforeach()
