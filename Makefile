# forklings: the one interface for learners, instructors and CI.
#
#   make                    build your lessons, show each lesson's state and the next step
#   make start [L=NN] [LAST=MM] the room starts at lesson NN (and ends at MM): others are not
#                           part of the course (no L: every lesson counts again)
#   make check [L=NN]       check one lesson (default: the first not yet passed);
#                           it stops at the first failure, ALL=1 runs every test
#   make run L=NN [ARGS=..] build and run your program of lesson NN
#   make hint L=NN          the next hint for lesson NN, one level per call
#   make watch [L=NN]       re-check on every save; Enter re-checks, q quits
#   make reset L=NN         restore a lesson's starter (asks; CONFIRM=yes)
#   make reset-all          restore every starter (asks; CONFIRM=yes)
#   make solution L=NN      the reference solution as a diff, once earned
#   make doctor             check this machine's tools and say what to install
#   make preflight          before a workshop: doctor, bats, one reference check,
#                           and one line to paste (ready, or what is missing)
#   make report [STUDENT=..] [FORMAT=json|junit|gradescope] [REPORT_DIR=reports]
#                           every lesson's results, in files named for the student
#   make room [DIR=reports] a folder of reports as one room table (text and HTML)
#   make handout DIR=.. [UPTO=NN] a copy without the solutions (and the lessons after NN)
#   make help               the commands, from the README's table
#   make trace L=NN [ARGS=] run lesson NN's program and draw the run (SVG, text)
#   make bench              the capstone pool and lesson 09's shared map against
#                           Python's multiprocessing
#                           (TREE=lessons: your own capstone)
#   make test               the repository proves itself (instructors, CI)
#
# TREE=solutions checks or runs the reference solution instead of your work.
# SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer.

CC       ?= cc
TREE     ?= lessons
SANITIZE ?=
WERROR   ?=

CFLAGS_STD := -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wpedantic -g
ifeq ($(SANITIZE),1)
CFLAGS_STD += -fsanitize=address,undefined -fno-sanitize-recover=all
BUILD    ?= build/sanitize
else
BUILD    ?= build
endif
ifeq ($(WERROR),1)
CFLAGS_STD += -Werror
endif
ALL_CFLAGS = $(CFLAGS_STD) $(CFLAGS)
# The math library too: a learner's ceil() (Python's default chunksize is a
# ceiling) must link without a word about -lm.
LDLIBS += -lm

# Every lessons/NN-slug folder is a lesson; its .c files make one program,
# build/<tree>/NN-slug/slug. A lesson with more programs (the capstone's
# demos and tests) has a file prog-NAME.c for each: it makes the program
# build/<tree>/NN-slug/NAME, linked with the lesson's other .c files except
# main.c, and is left out of the lesson's own program.
LESSONS := $(notdir $(wildcard lessons/[0-9][0-9]-*))
slug     = $(patsubst $(firstword $(subst -, ,$(1)))-%,%,$(1))
program  = $(BUILD)/$(1)/$(2)/$(call slug,$(2))
progsrcs = $(wildcard $(1)/$(2)/prog-*.c)
mainsrcs = $(filter-out $(call progsrcs,$(1),$(2)),$(wildcard $(1)/$(2)/*.c))
extras   = $(patsubst $(1)/$(2)/prog-%.c,$(BUILD)/$(1)/$(2)/%,$(call progsrcs,$(1),$(2)))
PROGRAMS = $(foreach l,$(LESSONS),$(call program,$(TREE),$(l)) $(call extras,$(TREE),$(l)))

# Every program is linked under a name of its own and renamed into place:
# a build never changes a file a running test is executing (a check, a
# suite and a tool can run make on the same build/ at once; a linker
# writing in place leaves a moment with a file that cannot be run).
TMP = $@.tmp$$$$
PLACE = && mv -f $(TMP) $@ || { rm -f $(TMP); exit 1; }

define program_rule
$(call program,$(1),$(2)): $(call mainsrcs,$(1),$(2)) $(wildcard $(1)/$(2)/*.h) $(BUILD)/.cflags
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_CFLAGS) -o $$(TMP) $$(filter %.c,$$^) $$(LDLIBS) $$(PLACE)
$(BUILD)/$(1)/$(2)/%: $(1)/$(2)/prog-%.c $(filter-out %/main.c,$(call mainsrcs,$(1),$(2))) $(wildcard $(1)/$(2)/*.h) $(BUILD)/.cflags
	@mkdir -p $$(@D)
	$$(CC) $$(ALL_CFLAGS) -o $$(TMP) $$(filter %.c,$$^) $$(LDLIBS) $$(PLACE)
endef
$(foreach t,lessons solutions,$(foreach l,$(LESSONS),$(eval $(call program_rule,$(t),$(l)))))

# Rebuild everything when the flags change (SANITIZE, WERROR, CC).
$(BUILD)/.cflags: FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(ALL_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS)' >$@

LIBDL := $(if $(filter Linux,$(shell uname -s)),-ldl)
LIBRT := $(if $(filter Linux,$(shell uname -s)),-lrt -lpthread)

# The test harness's guard runner and the library it preloads into every
# program it runs to count its processes exactly: always plain builds.
build/tests/guard: tests/lib/guard.c tests/lib/forkwatch.h build/tests/forkwatch.so
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra -Wpedantic -Werror -O1 -g -o $(TMP) $< -lm $(PLACE)
build/tests/forkwatch.so: tests/lib/forkwatch.c tests/lib/forkwatch.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra -Wpedantic -Werror -O1 -g -shared -fPIC -o $(TMP) $< $(LIBDL) $(PLACE)
# For the injection stage of make test: short transfers and EINTR.
build/tests/shortio.so: tests/lib/shortio.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra -Wpedantic -Werror -O1 -g -shared -fPIC -o $(TMP) $< $(LIBDL) $(LIBRT) $(PLACE)

# A lesson's last check result, remade by `make` only when the lesson's
# files, its suite or the harness changed since: make's own dependency
# tracking is the cache. Lessons never checked stay unchecked.
HARNESS := $(wildcard tests/lib/*.c tests/lib/*.h tests/lib/*.bash) tests/lib/learn
define result_rule
build/results/$(1)/$(2).result: $(wildcard $(1)/$(2)/*.c $(1)/$(2)/*.h) tests/$(2).bats $(HARNESS)
	@$$(LEARN) record $(1) $(2)
endef
$(foreach t,lessons solutions,$(foreach l,$(LESSONS),$(eval $(call result_rule,$(t),$(l)))))
recheck: $(wildcard build/results/$(TREE)/*.result)

# Tools for learners: the trace drawer (make trace); the benchmark's C side
# and the seed's hello on the capstone pool (make bench), optimised.
build/tools/%: tools/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_STD) -O1 -o $(TMP) $< $(PLACE)
# Lesson 09's shared-memory cases: no pool, so the same for either tree.
build/tools/bench/shared: tools/bench/shared.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_STD) -O2 -o $(TMP) $< $(PLACE)
# make bench times the reference capstone (the learner's in a copy without
# solutions/, made by make handout); with TREE=lessons given on the
# command line or in the environment, the learner's own.
BENCH_TREE := $(if $(filter command line environment,$(origin TREE)),$(TREE),$(if $(wildcard solutions/08-pool),solutions,lessons))
# The capstone's library: every .c file of 08 but its programs (main.c,
# prog-*.c), and its headers.
poollib  = $(filter-out %/main.c $(call progsrcs,$(1),08-pool),$(wildcard $(1)/08-pool/*.c)) $(wildcard $(1)/08-pool/*.h)
define bench_rules
build/tools/$(1)/bench: tools/bench/bench.c tools/bench/floor.c tools/bench/bench.h $(call poollib,$(1))
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS_STD) -I$(1)/08-pool -O2 -o $$(TMP) $$(filter %.c,$$^) $$(PLACE)
build/tools/$(1)/hello: tools/bench/hello.c $(call poollib,$(1))
	@mkdir -p $$(@D)
	$$(CC) $$(CFLAGS_STD) -I$(1)/08-pool -O2 -o $$(TMP) $$(filter %.c,$$^) $$(PLACE)
endef
$(foreach t,lessons solutions,$(eval $(call bench_rules,$(t))))

LEARN = tests/lib/learn

.DEFAULT_GOAL := status
.PHONY: status programs recheck start check run hint watch reset reset-all \
	solution doctor preflight report room handout help trace bench test clean FORCE

programs: $(PROGRAMS)

status:
	@$(LEARN) status

start:
	@$(LEARN) start "$(L)" "$(LAST)"

check:
	@ALL=$(ALL) $(LEARN) check $(L)

run:
	@$(LEARN) run $(L) $(ARGS)

hint:
	@$(LEARN) hint $(L)

watch:
	@$(LEARN) watch $(L)

reset:
	@$(LEARN) reset $(L)

reset-all:
	@$(LEARN) reset-all

solution:
	@$(LEARN) solution $(L)

doctor:
	@$(LEARN) doctor

preflight:
	@$(LEARN) preflight

report:
	@$(LEARN) report

room:
	@tools/room $(or $(DIR),reports)

handout:
	@$(LEARN) handout "$(DIR)" "$(UPTO)"

# The README's table of commands.
help:
	@sed -n 's/^| \(`make[^|]*\) | \(.*\) |$$/\1\t\2/p' README.md | tr -d '`' | awk -F '\t' '{ printf "  %-34s %s\n", $$1, $$2 }'

trace: build/tools/trace
	@$(LEARN) trace $(L) $(ARGS)

# A copy handed out before lesson 08 (make handout UPTO=) has no capstone
# to time: one line says so, not a compiler's error.
ifneq ($(wildcard $(BENCH_TREE)/08-pool/pool.h),)
bench: build/tools/$(BENCH_TREE)/bench build/tools/$(BENCH_TREE)/hello build/tools/bench/shared
	@BENCH_TREE=$(BENCH_TREE) tools/bench/run
else
bench:
	@echo "bench: this copy has no $(BENCH_TREE)/08-pool: there is no capstone pool to time" >&2; exit 1
endif

test:
	@tests/lib/prove

clean:
	rm -rf build

FORCE:
