/* Sv39 paging test (body in include/paging_body.S). */
#include "paging_body.S"
