# Short commands over CMake. `make demo` needs only a C compiler and cmake;
# `make test` installs what the tests lack when run as root.
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build

.PHONY: all demo test bench install clean

all:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DREAP_TESTS=OFF >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

demo:
	cmake -S . -B $(BUILD)-demo -DCMAKE_BUILD_TYPE=Release -DREAP_TESTS=OFF >/dev/null
	cmake --build $(BUILD)-demo -j $(JOBS) --target reap-demo >/dev/null
	./$(BUILD)-demo/reap-demo

test:
	./scripts/test.sh

bench:
	./bench/run.sh

install:
	cmake -S . -B $(BUILD)-install -DCMAKE_BUILD_TYPE=Release -DREAP_TESTS=OFF \
		-DREAP_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD)-install -j $(JOBS)
	cmake --install $(BUILD)-install

clean:
	rm -rf $(BUILD) $(BUILD)-*
