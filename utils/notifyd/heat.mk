# The optional access index (see scoutfs-notify-heat(8)): built only
# where pkg-config finds SQLite, so that no database is ever a build
# dependency of scoutfs-utils or of the core tools.  PostgreSQL (libpq)
# and the NATS ingest (libnats) are compiled in where pkg-config finds
# them too.  NOTIFY_HEAT=1 makes a missing library an error (SQLite,
# libpq and libnats all), NOTIFY_HEAT=0 skips the index (the RPM
# spec's "heat" build condition sets one or the other).
HEAT_BIN := scoutfs-notify-heat
HAVE_SQLITE := $(shell pkg-config --exists sqlite3 2>/dev/null && echo 1)
HAVE_PQ := $(shell pkg-config --exists libpq 2>/dev/null && echo 1)
HAVE_NATS_HEAT := $(shell pkg-config --exists libnats 2>/dev/null && echo 1)
ifeq ($(NOTIFY_HEAT),0)
BUILD_HEAT :=
else ifeq ($(NOTIFY_HEAT),1)
ifneq ($(HAVE_SQLITE)$(HAVE_PQ)$(HAVE_NATS_HEAT),111)
$(error NOTIFY_HEAT=1 but pkg-config does not find all of sqlite3, libpq and libnats)
endif
BUILD_HEAT := 1
else ifeq ($(HAVE_SQLITE),1)
BUILD_HEAT := 1
endif
ifeq ($(BUILD_HEAT),1)
all: $(HEAT_BIN)
else
all: heat-note
endif

heat-note:
	@echo "scoutfs-notifyd: not building $(HEAT_BIN): $(if $(filter 0,$(NOTIFY_HEAT)),NOTIFY_HEAT=0,pkg-config finds no sqlite3)"

HEAT_SRC := heat-store.c heat-sqlite.c heat-apply.c heat-ingest.c heat-scan.c heat-query.c \
	notify-format.c notify-json.c notify-path.c
HEAT_HDR := heat.h heat-store.h heat-apply.h notify-format.h notify-json.h notify-path.h
HEAT_PKGS := sqlite3
ifeq ($(HAVE_PQ),1)
HEAT_SRC += heat-pg.c
HEAT_PKGS += libpq
$(HEAT_BIN): CFLAGS += -DHEAT_PG
endif
ifeq ($(HAVE_NATS_HEAT),1)
HEAT_SRC += notify-nats.c
HEAT_HDR += notify-nats.h
HEAT_PKGS += libnats
$(HEAT_BIN): CFLAGS += -DHEAT_NATS
endif
$(HEAT_BIN): $(HEAT_SRC) $(HEAT_HDR)
$(HEAT_BIN): CFLAGS += $(shell pkg-config --cflags $(HEAT_PKGS) 2>/dev/null)
$(HEAT_BIN): LDFLAGS += $(shell pkg-config --libs $(HEAT_PKGS) 2>/dev/null) -lm -pthread

clean: heat-clean
heat-clean:
	@rm -f $(HEAT_BIN)

.PHONY: heat-note heat-clean
