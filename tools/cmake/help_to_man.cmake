# Turns a program's --help text into a man page (section 1) that `man`
# shows as it is: the help text is the reference, so the page never drifts
# from the program. Run at build time:
#   cmake -DPROGRAM=<path> -DNAME=<name> -DVERSION=<v> -DOUT=<file.1> -P help_to_man.cmake
execute_process(COMMAND ${PROGRAM} --help OUTPUT_VARIABLE help RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} --help exited with ${rc}")
endif()
# roff: a leading dot or quote starts a request, and a backslash escapes.
string(REPLACE "\\" "\\e" help "${help}")
string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" help "${help}")
string(TOUPPER "${NAME}" upper)
file(WRITE ${OUT} ".TH ${upper} 1 \"\" \"runnel ${VERSION}\" \"Runnel\"\n.SH NAME\n${NAME}\n.SH SYNOPSIS AND OPTIONS\n.nf\n${help}.fi\n")
