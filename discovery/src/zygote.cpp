#include "zygote.hpp"

#include <fcntl.h>
#include <link.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "vdist/discovery/agent.hpp"

namespace vdist::discovery {
namespace {

/// A request: the core to pin to (-1: none), with the channel as SCM_RIGHTS.
struct request_body {
    std::int32_t core = -1;
};

/// A request as sendmsg/recvmsg see it: the body and room for one fd.
struct request_message {
    request_body body;
    iovec data{&body, sizeof body};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr header{};

    request_message() {
        header.msg_iov = &data;
        header.msg_iovlen = 1;
        header.msg_control = control;
        header.msg_controllen = sizeof control;
    }
    request_message(const request_message&) = delete;
    request_message& operator=(const request_message&) = delete;
};

/// In the new domain process: the channel as fd 3, nothing else inherited, then the node.
[[noreturn]] void become_domain(int channel, int core, pid_t parent, const zygote::node_main& run,
                                const std::string& program) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
        ::_exit(127);  // the zygote died before the prctl
    }
    if (channel == 3) {
        ::fcntl(3, F_SETFD, 0);
    } else if (::dup2(channel, 3) != 3) {
        ::_exit(127);
    }
    ::close_range(4, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (core >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(static_cast<unsigned>(core), &set);
        ::sched_setaffinity(0, sizeof set, &set);
    }
    if (run) {
        const int status = run(3);
        std::fflush(nullptr);
        ::_exit(status);
    }
    char arg0[] = "vdist";
    char arg1[] = "node";
    char arg2[] = "--agent-fd";
    char arg3[] = "3";
    char* argv[] = {arg0, arg1, arg2, arg3, nullptr};
    ::execv(program.c_str(), argv);
    ::_exit(127);
}

/// The program's read-only segments (its code and its constant data), on 2 MiB pages for the
/// domains to inherit. On these VMs a process pays about 5 µs for each 4 KiB page it touches for
/// the first time, even one whose entry fork copied (measured: a child reading 1000 of its
/// parent's pages took 5 ms; 4 MiB on 2 MiB pages, 0.1-0.2 ms), and a node touches some 500
/// pages of code and 100 of constant data while it starts. Each segment is copied into anonymous
/// transparent huge pages, which then replace the file's mapping at the same address (the bytes
/// are the same, so this function goes on running). Only whole 2 MiB pages move: the program is
/// linked with 2 MiB segment alignment (cli/CMakeLists.txt), so each segment starts on one, and
/// the gap up to the next segment is the program's own. Anything that fails leaves that
/// segment's file mapping as it was.
void move_image_to_huge_pages() {
    constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
    struct segment {
        std::uintptr_t start = 0, end = 0;
        bool writable = false, executable = false;
    };
    std::vector<segment> segments;
    ::dl_iterate_phdr(
        [](dl_phdr_info* info, std::size_t, void* out) {
            auto& found = *static_cast<std::vector<segment>*>(out);
            for (int i = 0; i < info->dlpi_phnum; ++i) {
                const auto& header = info->dlpi_phdr[i];
                if (header.p_type == PT_LOAD) {
                    const auto start = info->dlpi_addr + header.p_vaddr;
                    found.push_back({start, start + header.p_memsz, (header.p_flags & PF_W) != 0,
                                     (header.p_flags & PF_X) != 0});
                }
            }
            return 1;  // the program comes first; the libraries stay as they are
        },
        &segments);
    std::ranges::sort(segments, {}, &segment::start);
    // What comes before the code (the headers, the relocations) only the program's start reads.
    const auto code = std::ranges::find_if(segments, &segment::executable);
    for (auto s_at = code; s_at != segments.end(); ++s_at) {
        const auto& s = *s_at;
        const auto next = s_at + 1 != segments.end() ? s_at[1].start : UINTPTR_MAX;
        const auto last = std::min((s.end + huge - 1) & ~(huge - 1), next) & ~(huge - 1);
        if (s.writable || (s.start & (huge - 1)) != 0 || last <= s.start) {
            continue;  // written (data), or not linked for it
        }
        const auto size = last - s.start;
        void* area = ::mmap(nullptr, size + huge, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (area == MAP_FAILED) {
            return;
        }
        const auto raw = reinterpret_cast<std::uintptr_t>(area);
        const auto aligned = (raw + huge - 1) & ~(huge - 1);
        auto* copy = reinterpret_cast<void*>(aligned);
        (void)::madvise(copy, size, MADV_HUGEPAGE);
        std::memcpy(copy, reinterpret_cast<const void*>(s.start), s.end - s.start);
        const int protection = PROT_READ | (s.executable ? PROT_EXEC : 0);
        if (::mprotect(copy, size, protection) != 0 ||
            ::mremap(copy, size, size, MREMAP_MAYMOVE | MREMAP_FIXED,
                     reinterpret_cast<void*>(s.start)) == MAP_FAILED) {
            ::munmap(area, size + huge);
            continue;
        }
        // What is left of the over-allocation around the moved pages.
        if (aligned > raw) {
            ::munmap(area, aligned - raw);
        }
        if (raw + huge > aligned) {
            ::munmap(reinterpret_cast<void*>(aligned + size), raw + huge - aligned);
        }
    }
}

/// What goes to the agent: zygote::event's fields.
struct wire_event {
    std::int32_t what = 0;
    std::int32_t pid = -1;
    std::int32_t value = 0;
};

void tell(int socket, zygote::event::kind what, pid_t pid, int value) {
    const wire_event e{static_cast<std::int32_t>(what), pid, value};
    while (::send(socket, &e, sizeof e, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
}

/// One request: a domain process for the channel it carries.
void fork_domain(int socket, const zygote::node_main& run, const std::string& program) {
    request_message request;
    const auto n = ::recvmsg(socket, &request.header, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) {
        return;
    }
    if (n <= 0) {
        ::_exit(0);  // the agent is gone or done; the domains go with this process
    }
    const cmsghdr* header = CMSG_FIRSTHDR(&request.header);
    if (n != sizeof request.body || header == nullptr || header->cmsg_type != SCM_RIGHTS) {
        tell(socket, zygote::event::kind::spawn_failed, -1, EINVAL);
        return;
    }
    int channel = -1;
    std::memcpy(&channel, CMSG_DATA(header), sizeof channel);
    const pid_t zygote_pid = ::getpid();
    // _Fork, not fork: no atfork handlers and no locking of malloc's arenas and stdio around
    // it, whose writes cost the zygote copy-on-write faults after every fork. The zygote has
    // one thread and calls neither while it forks; it writes nothing through stdio either (its
    // buffers were flushed before it was forked), so a domain has none to flush again.
    const pid_t child = ::_Fork();
    if (child == 0) {
        become_domain(channel, request.body.core, zygote_pid, run, program);
    }
    const int error = errno;
    ::close(channel);
    if (child < 0) {
        tell(socket, zygote::event::kind::spawn_failed, -1, error);
    } else {
        tell(socket, zygote::event::kind::spawned, child, 0);
    }
}

/// The zygote's loop: a fork per request, an exit report per reaped domain, until the agent
/// closes the socket.
[[noreturn]] void serve(int socket, const zygote::node_main& run, const std::string& program) {
    sigset_t child_signal;
    sigemptyset(&child_signal);
    sigaddset(&child_signal, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &child_signal, nullptr);
    const int reaped = ::signalfd(-1, &child_signal, SFD_CLOEXEC | SFD_NONBLOCK);
    if (reaped < 0) {
        ::_exit(1);
    }
    for (;;) {
        pollfd fds[2] = {{socket, POLLIN, 0}, {reaped, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            continue;  // EINTR
        }
        if ((fds[1].revents & POLLIN) != 0) {
            signalfd_siginfo info{};
            while (::read(reaped, &info, sizeof info) == sizeof info) {
            }
            int status = 0;
            for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
                tell(socket, zygote::event::kind::exited, pid, status);
            }
        }
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
            fork_domain(socket, run, program);
        }
    }
}

}  // namespace

std::expected<zygote, std::error_code> zygote::fork_zygote(
    const std::function<void(int socket)>& become) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
        return std::unexpected(std::error_code(errno, std::system_category()));
    }
    std::fflush(nullptr);
    const pid_t agent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        const std::error_code error(errno, std::system_category());
        ::close(pair[0]);
        ::close(pair[1]);
        return std::unexpected(error);
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // kept across an exec
        if (::getppid() != agent) {
            ::_exit(127);  // the agent died before the prctl
        }
        // Only fds 0-2 and the socket: domains must not inherit the agent's.
        const int socket = pair[1];
        ::close_range(3, static_cast<unsigned>(socket) - 1, 0);
        ::close_range(static_cast<unsigned>(socket) + 1, ~0U, 0);
        become(socket);
        ::_exit(127);
    }
    ::close(pair[1]);
    return zygote(pair[0], pid);
}

std::expected<zygote, std::error_code> zygote::start(node_main run, std::filesystem::path program) {
    return fork_zygote([&](int socket) {
        move_image_to_huge_pages();
        serve(socket, run, program.string());
    });
}

std::expected<zygote, std::error_code> zygote::start_exec(std::filesystem::path program) {
    return fork_zygote([&](int socket) {
        ::fcntl(socket, F_SETFD, 0);  // open across the exec
        std::array<char, 16> fd_text{};
        (void)std::to_chars(fd_text.data(), fd_text.data() + fd_text.size() - 1, socket);
        char arg0[] = "vdist";
        std::string flag(zygote_flag);
        char* argv[] = {arg0, flag.data(), fd_text.data(), nullptr};
        ::execv(program.c_str(), argv);
        // _exit(127): the agent sees the socket hang up, the zygote is gone.
    });
}

void zygote::serve_exec(int socket, node_main run) {
    ::fcntl(socket, F_SETFD, FD_CLOEXEC);
    move_image_to_huge_pages();
    serve(socket, run, "");
}

zygote::zygote(zygote&& other) noexcept
    : socket_(std::exchange(other.socket_, -1)), pid_(std::exchange(other.pid_, -1)) {}

zygote::~zygote() {
    if (socket_ >= 0) {
        ::close(socket_);
    }
    if (pid_ > 0) {
        ::waitpid(pid_, nullptr, 0);
    }
}

bool zygote::request(int channel, int core) {
    request_message request;
    request.body.core = static_cast<std::int32_t>(core);
    cmsghdr* header = CMSG_FIRSTHDR(&request.header);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(header), &channel, sizeof channel);
    for (;;) {
        const auto n = ::sendmsg(socket_, &request.header, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return n == sizeof request.body;
    }
}

std::optional<zygote::event> zygote::next_event(std::chrono::milliseconds wait) {
    pollfd fd{socket_, POLLIN, 0};
    if (gone_ || ::poll(&fd, 1, static_cast<int>(wait.count())) <= 0) {
        return std::nullopt;
    }
    wire_event e;
    const auto n = ::recv(socket_, &e, sizeof e, MSG_DONTWAIT);
    if (n != sizeof e) {
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            gone_ = true;
        }
        return std::nullopt;
    }
    return event{static_cast<event::kind>(e.what), static_cast<pid_t>(e.pid), e.value};
}

}  // namespace vdist::discovery
