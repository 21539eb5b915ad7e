// The namespace of the level this translation unit compiles (see dispatch.hpp).
//
// Everything the hot sources define or include with code that depends on the target
// flags lives in fastblur::FASTBLUR_VARIANT, so that no two levels share a symbol (the
// linker would keep one copy, possibly with instructions the CPU lacks).
#pragma once

#ifndef FASTBLUR_VARIANT
#error "hot kernel sources are compiled with -DFASTBLUR_VARIANT=<level> (see CMakeLists.txt)"
#endif

#define FASTBLUR_STRINGIFY_(x) #x
#define FASTBLUR_STRINGIFY(x) FASTBLUR_STRINGIFY_(x)
#define FASTBLUR_VARIANT_NAME FASTBLUR_STRINGIFY(FASTBLUR_VARIANT)
