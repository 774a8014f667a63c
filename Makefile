# nodehealthd build, packaging and test entry points.
#
#   make build      bin/nodehealthd, bin/nodehealthctl
#   make packages   dist/*.deb and dist/*.rpm (nfpm, pinned by scripts/nfpm.sh)
#   make lint-packages  lintian and rpmlint on them
#   make test       unit tests under the race detector (go test -race ./...)
#   make e2e        the systemd end-to-end suite (root, systemd-nspawn)
#
# Variables: VERSION (package and binary version), RELEASE (package
# release), BIN and DIST (output directories), GOFLAGS.

VERSION ?= 0.1.0
RELEASE ?= 1
BIN     ?= bin
DIST    ?= dist
ARCH    ?= $(shell go env GOARCH)

# The journal reader uses sd-journal through cgo (headers from
# libsystemd-dev; libsystemd itself is dlopen()ed at run time). Binaries are
# position-independent with RELRO, as distribution policy (lintian's
# hardening checks) expects. Not -z now: go-nvml leaves the NVML symbols
# unresolved at link time and binds them lazily from the driver's
# libnvidia-ml, present on GPU nodes only; immediate binding would stop the
# daemon from starting anywhere else.
export CGO_ENABLED := 1
LDFLAGS := -s -w -X main.version=$(VERSION) -linkmode=external -extldflags=-Wl,-z,relro
# TAGS=pprof links the profiler behind --pprof (0.6 MiB, for developers).
TAGS ?=
GOBUILD := go build -trimpath -buildmode=pie -tags '$(TAGS)' -ldflags '$(LDFLAGS)'

# Where packaging inputs are staged: binaries, compressed man pages.
STAGE := $(DIST)/.stage-$(VERSION)

.PHONY: all build packages lint-packages test e2e clean

all: build

build:
	@mkdir -p $(BIN)
	$(GOBUILD) -o $(BIN)/nodehealthd ./cmd/nodehealthd
	$(GOBUILD) -o $(BIN)/nodehealthctl ./cmd/nodehealthctl

# The packages are built from the binaries in $(BIN); building them again
# for each package version would cost minutes on a small machine, and only
# the package metadata differs.
packages: build
	@rm -rf $(STAGE) && mkdir -p $(STAGE)
	cp $(BIN)/nodehealthd $(BIN)/nodehealthctl $(STAGE)/
	gzip -9n -c docs/man/nodehealthd.8 >$(STAGE)/nodehealthd.8.gz
	gzip -9n -c docs/man/nodehealthctl.8 >$(STAGE)/nodehealthctl.8.gz
	gzip -9n -c packaging/deb/changelog >$(STAGE)/changelog.Debian.gz
	sed 's|$${BUILD}|$(STAGE)|' packaging/nfpm.yaml >$(STAGE)/nfpm-rpm.yaml
	sed '/^changelog:/d' $(STAGE)/nfpm-rpm.yaml >$(STAGE)/nfpm-deb.yaml
	NFPM=$$(scripts/nfpm.sh) && \
	export VERSION=$(VERSION) RELEASE=$(RELEASE) ARCH=$(ARCH) && \
	$$NFPM package -f $(STAGE)/nfpm-deb.yaml -p deb -t $(DIST)/ && \
	$$NFPM package -f $(STAGE)/nfpm-rpm.yaml -p rpm -t $(DIST)/
	@rm -rf $(STAGE)

lint-packages:
	lintian --fail-on error,warning $(DIST)/nodehealthd_$(VERSION)-$(RELEASE)_$(ARCH).deb
	rpmlint -r packaging/rpm/rpmlintrc $(DIST)/nodehealthd-$(VERSION)-$(RELEASE).*.rpm

test:
	go test -race ./...

# The suite boots a Debian rootfs (scripts/rootfs.sh caches it) under
# systemd-nspawn and installs the packages built here, plus a second deb
# with a higher version for the upgrade test.
e2e: packages
	$(MAKE) packages VERSION=$(VERSION).1 RELEASE=$(RELEASE)
	NODEHEALTHD_E2E_DIST=$(abspath $(DIST)) NODEHEALTHD_E2E_VERSION=$(VERSION)-$(RELEASE) \
	NODEHEALTHD_E2E_UPGRADE_VERSION=$(VERSION).1-$(RELEASE) \
		go test -count=1 -v -timeout 20m ./e2e/systemd/

clean:
	rm -rf $(BIN) $(DIST)
