"""natpass.py: a small ctypes binding of natpass's C ABI (capi/natpass.h), the
driver level: natpass owns the sockets.

    import natpass
    lib = natpass.load("./libnatpass.so")   # go build -buildmode=c-shared -o libnatpass.so ./capi
    node = natpass.Node(lib, server="127.0.0.1:3478", id="alice", insecure_dev="1")
    conn = node.connect("bob")             # or node.accept()
    conn.send(b"hello")
    print(conn.recv())                     # bytes; None after the peer's normal close
    node.close()

Every call releases the GIL while it waits, so threads may send and receive at
once. Failures raise natpass.Error with the library's code and message.
"""
import ctypes

OK = 0
ERR_TIMEOUT = -4
ERR_EOF = -8
ERR_TOO_SMALL = -11
RELIABLE_ORDERED = 0

i32, i64, u64, size_t, char_p, void_p = (ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64,
                                         ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p)

# name: (result, argument types), as natpass.h declares them.
_SIGNATURES = {
    "natpass_abi_version": (i32, []),
    "natpass_last_error": (i64, [char_p, size_t]),
    "natpass_config_new": (i64, []),
    "natpass_config_set": (i32, [i64, char_p, char_p]),
    "natpass_config_free": (i32, [i64]),
    "natpass_listen": (i64, [i64]),
    "natpass_connect": (i64, [i64, char_p, i64]),
    "natpass_accept": (i64, [i64, i64]),
    "natpass_local_addr": (i64, [i64, char_p, size_t]),
    "natpass_close": (i32, [i64]),
    "natpass_conn_peer": (i64, [i64, char_p, size_t]),
    "natpass_send": (i32, [i64, i32, i32, void_p, size_t, i64]),
    "natpass_flush": (i32, [i64, i64]),
    "natpass_recv": (i64, [i64, void_p, size_t, ctypes.POINTER(i32), ctypes.POINTER(i32),
                           ctypes.POINTER(u64), i64]),
    "natpass_conn_close": (i32, [i64]),
}


class Error(Exception):
    """A failed call: code is natpass.h's enum natpass_error."""

    def __init__(self, lib, what, code):
        buf = ctypes.create_string_buffer(1024)
        lib.natpass_last_error(buf, len(buf))
        super().__init__("%s: %s (code %d)" % (what, buf.value.decode(errors="replace"), code))
        self.code = code


def load(path):
    """Loads the library and declares the functions' C types."""
    lib = ctypes.CDLL(path)
    for name, (res, args) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def _check(lib, what, rc):
    if rc < 0:
        raise Error(lib, what, rc)
    return rc


class Node:
    """A driver-level node; options are natpass_config_set's (dashes as underscores)."""

    def __init__(self, lib, **options):
        self.lib = lib
        cfg = lib.natpass_config_new()
        try:
            for name, value in options.items():
                _check(lib, "option " + name, lib.natpass_config_set(
                    cfg, name.replace("_", "-").encode(), str(value).encode()))
            self.handle = _check(lib, "listen", lib.natpass_listen(cfg))
        finally:
            lib.natpass_config_free(cfg)

    def local_addr(self):
        buf = ctypes.create_string_buffer(64)
        self.lib.natpass_local_addr(self.handle, buf, len(buf))
        return buf.value.decode()

    def connect(self, peer, timeout_ms=-1):
        return Conn(self.lib, _check(self.lib, "connect", self.lib.natpass_connect(
            self.handle, peer.encode(), timeout_ms)))

    def accept(self, timeout_ms=-1):
        return Conn(self.lib, _check(self.lib, "accept", self.lib.natpass_accept(self.handle, timeout_ms)))

    def close(self):
        self.lib.natpass_close(self.handle)


class Conn:
    """A connection with one peer."""

    def __init__(self, lib, handle):
        self.lib, self.handle = lib, handle
        self._buf = ctypes.create_string_buffer(64 << 10)

    def peer(self):
        buf = ctypes.create_string_buffer(65)
        self.lib.natpass_conn_peer(self.handle, buf, len(buf))
        return buf.value.decode()

    def send(self, data, lane=0, mode=RELIABLE_ORDERED, timeout_ms=-1):
        _check(self.lib, "send", self.lib.natpass_send(self.handle, lane, mode, data, len(data), timeout_ms))

    def flush(self, timeout_ms=-1):
        rc = self.lib.natpass_flush(self.handle, timeout_ms)
        if rc != ERR_EOF:  # the peer closed normally: everything arrived
            _check(self.lib, "flush", rc)

    def recv(self, timeout_ms=-1):
        """The next message (bytes), or None after the peer's normal close."""
        need = u64()
        while True:
            n = self.lib.natpass_recv(self.handle, self._buf, len(self._buf), None, None,
                                      ctypes.byref(need), timeout_ms)
            if n == ERR_TOO_SMALL:
                self._buf = ctypes.create_string_buffer(need.value)
                continue
            if n == ERR_EOF:
                return None
            _check(self.lib, "recv", n)
            return self._buf.raw[:n]

    def close(self):
        self.lib.natpass_conn_close(self.handle)
