// The C++ peers of bench/obj.c: std::shared_ptr and std::weak_ptr doing
// the same work as reap's acquire/release and weak get/release.
#include <memory>
#include <thread>

namespace {
struct Payload {
	long value[4];
};
std::shared_ptr<Payload> shared_obj;
std::weak_ptr<Payload> weak_obj;

void copy_loop(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		std::shared_ptr<Payload> copy(shared_obj); // acquire
		asm volatile("" : : "r"(copy.get()) : "memory");
	} // release
}

void lock_loop(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		std::shared_ptr<Payload> p = weak_obj.lock();
		asm volatile("" : : "r"(p.get()) : "memory");
	}
}

void on_threads(void (*fn)(size_t), size_t n, int threads)
{
	if (threads == 1) {
		fn(n);
		return;
	}
	std::thread a(fn, n), b(fn, n);
	a.join();
	b.join();
}
} // namespace

extern "C" void peer_cxx_setup(void)
{
	shared_obj = std::make_shared<Payload>();
	weak_obj = shared_obj;
}

extern "C" void peer_cxx_teardown(void)
{
	weak_obj.reset();
	shared_obj.reset();
}

extern "C" void peer_cxx_copy(size_t n, int threads)
{
	on_threads(copy_loop, n, threads);
}

extern "C" void peer_cxx_lock(size_t n, int threads)
{
	on_threads(lock_loop, n, threads);
}
