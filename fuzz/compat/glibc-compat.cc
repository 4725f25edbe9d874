// Jazzer.js 4's prebuilt libFuzzer addon is linked against glibc 2.38 and
// libstdc++ from GCC 13, newer than Debian 12's. It needs only three symbols from
// them; these stand-ins are preloaded (LD_PRELOAD) after the addon's references to
// those versions are made weak (see fuzz/lib/jazzer-setup.ts).
#include <cstdlib>
#include <ios>

// C23 strtol/strtoul differ from the classic ones only in accepting a "0b" prefix,
// which libFuzzer's flag parsing never sees.
extern "C" long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }
extern "C" unsigned long __isoc23_strtoul(const char *s, char **end, int base) { return strtoul(s, end, base); }

// GCC 13 objects call this to make sure the standard streams exist; older
// libstdc++ builds them in each translation unit's ios_base::Init.
namespace std {
void ios_base_library_init() { static ios_base::Init init; }
}
