/* Sdtrig trigger registers and mcontrol6 (type 6) address triggers with
   action 0: tselect/tdata1/tdata2/tinfo access, store, load and execute
   matches in S and U mode raising a breakpoint exception (cause 3) before the
   instruction takes effect, the mode bits, no match beside the address, and a
   hit at the end of a hot loop. Trap values are not compared: QEMU reports 0,
   the spec (and tsvisor) the matching address. */
#include "bare.h"

#define T6       0x6000000000000000
#define T_M      (1 << 6)
#define T_S      (1 << 4)
#define T_U      (1 << 3)
#define T_EXEC   (1 << 2)
#define T_STORE  (1 << 1)
#define T_LOAD   (1 << 0)

.macro TRY mode, fn, arg, name, trap
  CLRTRAP
  li a0, \mode
  la a1, \fn
  mv a2, \arg
  call rt_enter
  LDV t0, rt_mcount
  CHECK "\name traps", t0, \trap
  .if \trap
  LDV t0, rt_mcause
  CHECK "\name mcause", t0, 3
  .endif
.endm

.macro ARM tdata1_value, addr_reg
  csrw tdata2, \addr_reg
  li t0, \tdata1_value
  csrw tdata1, t0
.endm

.macro DISARM
  li t0, T6
  csrw tdata1, t0
.endm

TEST_BEGIN triggers
  csrw medeleg, zero
  /* reading tselect is legal, and it selects trigger 0 or 1 */
  csrr t0, tselect
  CHECK "tselect reads", t0, 0
  li t0, 1
  csrw tselect, t0
  csrr t0, tselect
  CHECK "tselect = 1", t0, 1
  csrw tselect, zero
  csrr t0, tselect
  CHECK "tselect = 0", t0, 0
  /* tinfo lists type 6 */
  csrr t0, tinfo
  srli t0, t0, 6
  andi t0, t0, 1
  CHECK "tinfo type 6", t0, 1
  /* an mcontrol6 with every implemented field set reads back */
  li t0, T6 | T_M | T_S | T_U | T_EXEC | T_STORE | T_LOAD
  csrw tdata1, t0
  csrr t1, tdata1
  CHECKR "tdata1 mcontrol6", t1, t0
  li t0, T6
  csrw tdata1, t0
  csrr t1, tdata1
  CHECKR "tdata1 disarmed", t1, t0
  la t0, var
  csrw tdata2, t0
  csrr t1, tdata2
  CHECKR "tdata2", t1, t0
  csrr t0, tdata3
  CHECK "tdata3", t0, 0
  /* tdata registers are per trigger */
  li t0, 1
  csrw tselect, t0
  li t0, 0x1234
  csrw tdata2, t0
  csrw tselect, zero
  csrr t0, tdata2
  la t1, var
  CHECKR "tdata2 of trigger 0 kept", t0, t1
  li t0, 1
  csrw tselect, t0
  csrr t0, tdata2
  CHECK "tdata2 of trigger 1", t0, 0x1234
  csrw tdata2, zero
  csrw tselect, zero

  la s1, var
  /* ---- store trigger, S-mode ---- */
  ARM T6 | T_S | T_STORE, s1
  TRY MODE_S, do_store, s1, "S store at var", 1
  LDV t0, rt_mepc
  CHECKA "S store at var mepc", t0, do_store_at
  LDV t0, var
  CHECK "store did not happen", t0, 5
  TRY MODE_S, do_load, s1, "S load at var (store trigger)", 0
  addi a3, s1, 8
  TRY MODE_S, do_store, a3, "S store beside var", 0
  TRY MODE_U, do_store, s1, "U store at var (S trigger)", 0
  LDV t0, var
  CHECK "U store happened", t0, 0x5a
  li t0, 5
  STV t0, var
  DISARM

  /* ---- load trigger, U-mode ---- */
  ARM T6 | T_U | T_LOAD, s1
  TRY MODE_U, do_load, s1, "U load at var", 1
  LDV t0, rt_mepc
  CHECKA "U load at var mepc", t0, do_load_at
  TRY MODE_U, do_store, s1, "U store at var (load trigger)", 0
  TRY MODE_S, do_load, s1, "S load at var (U trigger)", 0
  /* a hot loop beside the address, then one load at it */
  TRY MODE_U, loop_hit, s1, "U hot loop then load", 1
  LDV t0, rt_mepc
  CHECKA "U hot loop mepc", t0, loop_hit_at
  CHECK "U hot loop iterations", a0, 0
  DISARM
  li t0, 5
  STV t0, var

  /* ---- execute trigger on trigger 1, S and U ---- */
  li t0, 1
  csrw tselect, t0
  la s2, exec_at
  ARM T6 | T_S | T_U | T_EXEC, s2
  TRY MODE_U, do_exec, s1, "U execute", 1
  LDV t0, rt_mepc
  CHECKA "U execute mepc", t0, exec_at
  TRY MODE_S, do_exec, s1, "S execute", 1
  /* the instruction before it runs, the trapped one does not (the handler skips it) */
  CHECK "S execute a0", a0, 1
  DISARM
  TRY MODE_S, do_exec, s1, "S execute disarmed", 0
  CHECK "S execute disarmed a0", a0, 3
  csrw tselect, zero

  /* ---- M-mode load trigger while mstatus.MIE = 1 (no interrupt enabled in mie) ---- */
  ARM T6 | T_M | T_LOAD, s1
  li t0, MSTATUS_MIE
  csrs mstatus, t0
  CLRTRAP
  RESUME_AT 1f
  ld t1, 0(s1)
1:li t0, MSTATUS_MIE
  csrc mstatus, t0
  LDV t0, rt_mcount
  CHECK "M load at var traps", t0, 1
  LDV t0, rt_mcause
  CHECK "M load at var mcause", t0, 3
  DISARM
TEST_END

do_store:
  li t0, 0x5a
do_store_at:
  sd t0, 0(a0)
  RET_TO_M
do_load:
do_load_at:
  ld a0, 0(a0)
  RET_TO_M
/* 200 loads of a0 + 8, then a load of a0; returns the loop counter (0) */
loop_hit:
  li t1, 200
  addi t3, a0, 8
1:ld t2, 0(t3)
  addi t1, t1, -1
  bnez t1, 1b
loop_hit_at:
  ld t2, 0(a0)
  mv a0, t1
  RET_TO_M
do_exec:
  li a0, 1
  .option push
  .option norvc
exec_at:
  addi a0, a0, 2
  .option pop
  RET_TO_M

  .data
  .balign 8
var: .dword 5
  .dword 0
