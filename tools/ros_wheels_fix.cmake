# Only for the PyPI-wheel path (tools/setup.sh passes it as CMAKE_PROJECT_INCLUDE).
# The ROS 2 wheels' exported rosidl_generator_py targets hard-code the wheel build host's Python and
# numpy include dirs (/opt/python/cp311-cp311/...). Rewrite them to this interpreter's once all
# targets are imported, i.e. deferred to the end of the top-level CMakeLists.
find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)

function(_sole_r1_fix_wheel_include_dirs)
  get_property(_targets DIRECTORY ${CMAKE_SOURCE_DIR} PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs OR NOT _dirs MATCHES "/opt/python/")
      continue()
    endif()
    set(_fixed "")
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^/opt/python/.*numpy")
        list(APPEND _fixed ${Python3_NumPy_INCLUDE_DIRS})
      elseif(_dir MATCHES "^/opt/python/")
        list(APPEND _fixed ${Python3_INCLUDE_DIRS})
      else()
        list(APPEND _fixed ${_dir})
      endif()
    endforeach()
    list(REMOVE_DUPLICATES _fixed)
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL _sole_r1_fix_wheel_include_dirs)
