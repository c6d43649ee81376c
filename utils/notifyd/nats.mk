# The optional NATS JetStream forwarder and its consumer (see
# scoutfs-notify-forward(8)): built only where pkg-config finds libnats,
# so that NATS is never a build dependency of scoutfs-utils.
# NOTIFY_NATS=1 makes a missing libnats an error, NOTIFY_NATS=0 skips
# them (the RPM spec's "nats" build condition sets one or the other).
NATS_BIN := scoutfs-notify-forward scoutfs-notify-watch-nats
HAVE_NATS := $(shell pkg-config --exists libnats 2>/dev/null && echo 1)
ifeq ($(NOTIFY_NATS),0)
BUILD_NATS :=
else ifeq ($(HAVE_NATS),1)
BUILD_NATS := 1
else ifeq ($(NOTIFY_NATS),1)
$(error NOTIFY_NATS=1 but pkg-config finds no libnats)
endif
ifeq ($(BUILD_NATS),1)
all: $(NATS_BIN)
else
all: nats-note
endif

nats-note:
	@echo "scoutfs-notifyd: not building $(NATS_BIN): $(if $(filter 0,$(NOTIFY_NATS)),NOTIFY_NATS=0,pkg-config finds no libnats)"

scoutfs-notify-forward: notify-format.c notify-json.c notify-nats.c notify-path.c notify-sock.c \
	notify-format.h notify-json.h notify-nats.h notify-path.h notify-sock.h
scoutfs-notify-watch-nats: notify-format.c notify-json.c notify-nats.c \
	notify-format.h notify-json.h notify-nats.h
$(NATS_BIN): CFLAGS += $(shell pkg-config --cflags libnats 2>/dev/null)
$(NATS_BIN): LDFLAGS += $(shell pkg-config --libs libnats 2>/dev/null) -lpthread

clean: nats-clean
nats-clean:
	@rm -f $(NATS_BIN)

.PHONY: nats-note nats-clean
