/* Sv48 paging test (body in include/paging_body.S). */
#define SV48 1
#include "paging_body.S"
