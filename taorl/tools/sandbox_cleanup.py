"""Remove a directory tree without recursion and without raising (standard library only).

Used by the trainer (the sandbox's own directory) and, with its source put in front of
_zygote.py's, by the zygote (a call's directory where there are no per-call namespaces). A tool
call can leave a 100,000-deep tree, directories without permissions or paths longer than
PATH_MAX: everything here works on directory file descriptors, one level at a time.
"""

import os
import stat


def _entries(dir_fd):
    try:
        with os.scandir(dir_fd) as it:
            return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    except OSError:
        return []


def remove_tree(path, max_passes=1_000_000):
    """rm -rf `path`, True if it is gone; never raises, never recurses, never holds more than two fds.

    Each pass empties the directories directly under `path` and moves their subdirectories up
    into `path` (renamed .rm-N), so a tree of depth D goes in D passes, whatever its shape."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            os.unlink(path)
            return True
        os.chmod(path, 0o700)
        root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    n = 0
    try:
        for _ in range(max_passes):
            entries = _entries(root)
            if not entries:
                break
            progress = False
            for name, is_dir in entries:
                if not is_dir:
                    progress |= _try(os.unlink, name, dir_fd=root)
                    continue
                try:
                    os.chmod(name, 0o700, dir_fd=root, follow_symlinks=False)
                except (OSError, NotImplementedError):
                    pass
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=root)
                except OSError:
                    continue
                try:
                    for child, child_is_dir in _entries(sub):
                        if child_is_dir:
                            n += 1
                            progress |= _try(os.rename, child, ".rm-%d" % n, src_dir_fd=sub, dst_dir_fd=root)
                        else:
                            progress |= _try(os.unlink, child, dir_fd=sub)
                finally:
                    os.close(sub)
                progress |= _try(os.rmdir, name, dir_fd=root)
            if not progress:
                break
    finally:
        os.close(root)
    return _try(os.rmdir, path) or not os.path.lexists(path)


def _try(fn, *args, **kw):
    try:
        fn(*args, **kw)
        return True
    except OSError:
        return False
