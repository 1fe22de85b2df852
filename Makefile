# vdist: every entry point installs what is missing, configures, builds (-j2) and runs.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all setup configure build demo test test-xen bench fuzz format format-check clean

all: build

setup:
	@scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j$(JOBS)

demo: build
	@$(BUILD_DIR)/bin/vdist demo

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure --timeout 300 -j$(JOBS)

# Only the Xen checks: boots Xen under QEMU (tests/xen/run-xen-qemu.sh); `make test` runs them too.
test-xen: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -L xen

# libFuzzer on the ETF decoder under ASan + UBSan (clang-16, build-fuzz/); FUZZ_SECONDS=600.
fuzz:
	@scripts/fuzz.sh

bench: build
	@$(BUILD_DIR)/bin/vdist bench transport

format:
	@git ls-files '*.hpp' '*.cpp' | xargs clang-format -i

format-check:
	@git ls-files '*.hpp' '*.cpp' | xargs clang-format --dry-run --Werror

clean:
	@rm -rf $(BUILD_DIR)
