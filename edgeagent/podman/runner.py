# The warm runner of python3 functions (edgeagent/podman/warm.go): one interpreter per warm
# container that runs every invocation's script in it, so that a warm call does not pay for
# the interpreter's start and modules imported once stay imported.
#
#   python3 /.deviceless/runner.py OUTPUT_LIMIT STDERR_LIMIT SCRIPT
#
# Requests on stdin, one per invocation: "<stdin bytes> <invocation id>\n" and the script's
# stdin (the invocation JSON). Reply on stdout, length-prefixed so that nothing a function
# prints can be taken for framing:
#
#   DLR1 <exit code> <stdout bytes> <truncated 0|1> <stderr bytes>\n<stdout><stderr tail>
#
# Each invocation gets a fresh __main__ module (its globals), sys.argv, sys.path, cwd and
# environment as at the runner's start, and its own fds 0, 1 and 2: 0 holds the invocation
# JSON, 1 and 2 are pipes that the runner drains (the first OUTPUT_LIMIT+1 bytes of stdout, the
# last STDERR_LIMIT of stderr) so os.write(1, ...) and child processes are captured as well.
# Shared across invocations: the process, sys.modules and everything reachable from it.
# Python 3.6 or newer; standard library only.
import builtins
import io
import os
import select
import sys
import threading
import traceback
import types


class Capture:
    """Drains one pipe in a thread, keeping its first (head) or last (tail) limit bytes."""

    def __init__(self, fd, limit, head, stop):
        self.fd, self.limit, self.head, self.stop = fd, limit, head, stop
        self.buf = bytearray()
        self.more = False  # head: more than limit bytes were written
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def keep(self, b):
        if self.head:
            room = self.limit + 1 - len(self.buf)
            if room > 0:
                self.buf += b[:room]
            if len(self.buf) > self.limit:
                self.more = True
                del self.buf[self.limit:]
        else:
            self.buf += b
            if len(self.buf) > self.limit:
                del self.buf[: len(self.buf) - self.limit]

    def run(self):
        try:
            while True:
                ready, _, _ = select.select([self.fd, self.stop], [], [])
                if self.stop in ready:
                    break
                b = os.read(self.fd, 65536)
                if not b:
                    return
                self.keep(b)
            # The script returned: take what it wrote, without waiting for a child process
            # that still holds the pipe.
            os.set_blocking(self.fd, False)
            for _ in range(1024):
                b = os.read(self.fd, 65536)
                if not b:
                    break
                self.keep(b)
        except BlockingIOError:
            pass
        finally:
            os.close(self.fd)

    def result(self):
        self.thread.join()
        return bytes(self.buf)


def exit_code(e, err):
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    # As the interpreter does for sys.exit("message").
    try:
        print(code, file=err)
    except Exception:
        pass  # the script closed its stderr
    return 1


def write_all(fd, b):
    view = memoryview(b)
    while view:
        view = view[os.write(fd, view):]


def main():
    out_limit, err_limit, script = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    # The control channel moves off fds 0 and 1 (os.dup's copies are not inherited by child
    # processes); the script's streams take their place for each invocation.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    enc = {"stdin": (sys.stdin.encoding, sys.stdin.errors), "stdout": (sys.stdout.encoding, sys.stdout.errors),
           "stderr": (sys.stderr.encoding, "backslashreplace")}
    # PYTHONUNBUFFERED (or -u) makes the interpreter's stdout and stderr write through.
    unbuffered = getattr(sys.stdout, "write_through", False)
    base_env = dict(os.environ)
    base_cwd = os.getcwd()
    base_path = [os.path.dirname(os.path.abspath(script))] + sys.path[1:]
    runner_main = sys.modules["__main__"]
    pid = os.getpid()
    code = None

    while True:
        header = requests.readline()
        if not header.endswith(b"\n"):
            os._exit(0)  # the agent closed stdin: retired
        size, inv_id = header.rstrip(b"\n").split(b" ", 1)
        line = requests.read(int(size))
        if len(line) != int(size):
            os._exit(0)

        if hasattr(os, "memfd_create"):
            stdin_fd = os.memfd_create("stdin")
        else:
            import tempfile
            stdin_fd = os.dup(tempfile.TemporaryFile().fileno())
        write_all(stdin_fd, line)
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        os.dup2(stdin_fd, 0)
        os.close(stdin_fd)
        stop_r, stop_w = os.pipe()
        captures = []
        for fd, limit, head in ((1, out_limit, True), (2, err_limit, False)):
            r, w = os.pipe()
            os.dup2(w, fd)
            os.close(w)
            captures.append(Capture(r, limit, head, stop_r))
        # On copies of fds 0-2: after the invocation the copies are pointed at /dev/null, so
        # a thread of the script that writes to its sys.stdout later writes nowhere.
        streams = [open(os.dup(0), "r", encoding=enc["stdin"][0], errors=enc["stdin"][1])]
        for fd, name in ((1, "stdout"), (2, "stderr")):
            if unbuffered:
                streams.append(io.TextIOWrapper(open(os.dup(fd), "wb", 0), encoding=enc[name][0],
                                                errors=enc[name][1], write_through=True))
            else:
                streams.append(open(os.dup(fd), "w", 1 if fd == 2 else -1, encoding=enc[name][0], errors=enc[name][1]))
        sys.stdin, sys.stdout, sys.stderr = streams
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams
        os.environ.clear()
        os.environ.update(base_env)
        os.environ["DEVICELESS_INVOCATION_ID"] = inv_id.decode("utf-8", "surrogateescape")
        os.chdir(base_cwd)
        sys.argv = [script]
        sys.path[:] = base_path
        module = types.ModuleType("__main__")
        module.__file__ = script
        module.__builtins__ = builtins
        sys.modules["__main__"] = module

        rc = 0
        try:
            try:
                if code is None:
                    with open(script, "rb") as f:
                        code = compile(f.read(), script, "exec", dont_inherit=True)
                exec(code, module.__dict__)
            finally:
                if os.getpid() != pid:
                    # A child the script forked came back here: end it as the
                    # interpreter would end a child that finished the script.
                    for s in (sys.stdout, sys.stderr):
                        try:
                            s.flush()
                        except Exception:
                            pass
                    os._exit(0)
        except SystemExit as e:
            rc = exit_code(e, streams[2])
        except BaseException as e:
            # The traceback starts at the script's frame, as the interpreter prints it.
            tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
            try:
                traceback.print_exception(type(e), e, tb, file=streams[2])
            except Exception:
                pass
            rc = 1
        for s in {id(s): s for s in streams + [sys.stdout, sys.stderr]}.values():
            try:
                s.flush()
            except Exception:
                pass

        sys.modules["__main__"] = runner_main
        for fd in [0, 1, 2] + [st.fileno() for st in streams if not st.closed]:
            os.dup2(devnull, fd)
        os.write(stop_w, b"x")
        out, err = captures[0].result(), captures[1].result()
        os.close(stop_r)
        os.close(stop_w)
        header = "DLR1 %d %d %d %d\n" % (rc, len(out), 1 if captures[0].more else 0, len(err))
        write_all(replies, header.encode() + out + err)


def run():
    # The runner's own failures go to the container's stderr (the agent keeps its tail).
    diag = os.dup(2)
    try:
        main()
    except BaseException:
        write_all(diag, ("deviceless runner: " + traceback.format_exc()).encode("utf-8", "replace"))
        os._exit(70)


run()
