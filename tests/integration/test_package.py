"""The Debian package (issue 22 item 4): a Release build in a temporary
directory, `cpack` makes reconciler_VERSION_amd64.deb, `dpkg -i` installs
it, the binary, the man page, the user, the directories and the unit are
checked (`systemd-analyze verify`), and `dpkg -r` removes it leaving the
journal in /var/lib/reconciler. Installing needs root: as another user the
package part is skipped (said, not failed). The man page is checked to name
every command and every setting, as any user.

Nothing here needs the test servers. Leaves the machine as it found it:
the package is purged at the end, and the user and directories the test
made are removed."""
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile

from harness import BIN, SRC, check, done

MAN = os.path.join(SRC, "docs", "reconciler.1")


def run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, **kw)


def man_page_covers_everything():
    page = open(MAN).read().replace("\\-", "-")
    help_text = run(BIN, "help").stdout + run(BIN, "help").stderr
    commands = re.findall(r"^  ([a-z]+) ", help_text, re.M)
    check(len(commands) >= 10, "reconciler help lists the commands: %r" % commands)
    missing = [c for c in commands if not re.search(r"^\.B reconciler %s\b" % c, page, re.M)
               or not re.search(r"^\.B %s$" % c, page, re.M)]
    check(not missing, "the man page has a synopsis and a section for every command: %s"
          % missing)
    table = run(BIN, "config", "--markdown").stdout
    settings = re.findall(r"^\| `([A-Z0-9_]+)` \|", table, re.M)
    check(len(settings) > 40, "config --markdown lists the settings")
    missing = [s for s in settings if s not in page]
    check(not missing, "the man page names every setting: %s" % missing)
    for code in ("0", "1", "2", "3", "4", "5", "78"):
        check(re.search(r"^\.TP\n\.B %s\n" % code, page, re.M),
              "the man page explains exit code %s" % code)


def build_package(tmp):
    build = os.path.join(tmp, "build")
    r = run("cmake", "-S", SRC, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
            "-DRECONCILER_SANITIZE=OFF", "-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON")
    if r.returncode == 0:  # only the binary: no tests, no fixture
        r = run("cmake", "--build", build, "--target", "reconciler")
    if r.returncode == 0:
        r = run("cpack", cwd=build)
    check(r.returncode == 0, "cmake + cpack build the package: %s" % (r.stdout + r.stderr)[-2000:])
    debs = [f for f in os.listdir(build) if f.endswith(".deb")]
    version = run(BIN, "--version").stdout.split()[-1]
    name = "reconciler_%s_amd64.deb" % version
    check(debs == [name], "cpack makes %s: %s" % (name, debs))
    return os.path.join(build, name) if debs == [name] else None


def verify_unit(unit):
    r = run("systemd-analyze", "verify", unit)
    if r.returncode == 0:
        check(True, "systemd-analyze verify accepts the unit")
        return
    text = r.stdout + r.stderr
    # where systemd cannot run (a container without it as PID 1),
    # systemd-analyze fails for that, not for the unit: say so and check the
    # unit with what can run here
    cannot = re.search(r"Failed to (initialize manager|set up|create|connect)|Operation not "
                       r"permitted|No such file or directory.*(/run/systemd|cgroup)", text)
    if not cannot or unit in text.split("Failed")[0]:
        check(False, "systemd-analyze verify: %s" % text)
        return
    print("NOTE: systemd-analyze verify cannot run here (%s); checking the unit's "
          "keys, user and binary instead" % text.strip().splitlines()[-1], flush=True)
    body = open(unit).read()
    keys = dict(l.split("=", 1) for l in body.splitlines() if re.match(r"^[A-Za-z]+=", l))
    exe = keys.get("ExecStart", "").split()[0]
    check(os.access(exe, os.X_OK), "the unit's ExecStart is the installed binary: %s" % exe)
    check(keys.get("User") == "reconciler" and "DynamicUser" not in keys,
          "the unit runs as the package's reconciler user")


def install_and_remove(deb):
    r = run("dpkg", "-i", deb)
    check(r.returncode == 0, "dpkg -i installs it: %s" % (r.stdout + r.stderr)[-1500:])
    if r.returncode != 0:
        return
    r = run("/usr/bin/reconciler", "--version")
    check(r.returncode == 0 and r.stdout.startswith("reconciler "),
          "reconciler --version: %r" % r.stdout)
    r = run("man", "-w", "reconciler")
    check(r.returncode == 0 and r.stdout.strip() == "/usr/share/man/man1/reconciler.1.gz",
          "man -w reconciler: %r %r" % (r.stdout, r.stderr))
    user = pwd.getpwnam("reconciler") if run("getent", "passwd", "reconciler").returncode == 0 \
        else None
    check(user is not None, "postinst made the reconciler user")
    st = os.stat("/var/lib/reconciler")
    check(user and st.st_uid == user.pw_uid, "/var/lib/reconciler belongs to it")
    st = os.stat("/etc/reconciler/env")
    check(stat.S_IMODE(st.st_mode) == 0o640 and user and st.st_gid == user.pw_gid,
          "/etc/reconciler/env is 0640, group reconciler")
    conff = run("dpkg-query", "-W", "-f=${Conffiles}", "reconciler").stdout
    check("/etc/reconciler/reconciler.yaml" in conff and "/etc/reconciler/env" in conff,
          "the configuration and the secrets file are conffiles: %r" % conff)
    deps = run("dpkg-query", "-W", "-f=${Depends}", "reconciler").stdout
    check("libmongoc-1.0-0" in deps and "libcurl4" in deps,
          "Depends names the libraries it links: %r" % deps)
    unit = "/usr/lib/systemd/system/reconciler.service"
    check(os.path.exists(unit), "the unit is installed")
    if os.path.exists(unit):
        verify_unit(unit)
    # the service's configuration loads as the unit gives it, as its user;
    # a journal is written where STATE_DB says
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "RECONCILER_CONFIG": "/etc/reconciler/reconciler.yaml",
           "STATE_DB": "/var/lib/reconciler/reconciler.db", "LOG_DIR": "/var/log/reconciler"}
    r = run("runuser", "-u", "reconciler", "--", "/usr/bin/reconciler", "migrate", env=env,
            cwd="/var/lib/reconciler")
    check(r.returncode == 0 and os.path.exists("/var/lib/reconciler/reconciler.db"),
          "the reconciler user writes its journal in /var/lib/reconciler: %s" % r.stderr)
    r = run("dpkg", "-r", "reconciler")
    check(r.returncode == 0, "dpkg -r removes it: %s" % r.stderr)
    check(not os.path.exists("/usr/bin/reconciler"), "the binary is gone")
    check(os.path.exists("/var/lib/reconciler/reconciler.db"), "the journal stays after dpkg -r")


def main():
    man_page_covers_everything()
    if os.geteuid() != 0:
        print("SKIP: building and installing the package needs root (dpkg -i)")
        return
    for tool in ("dpkg", "cpack", "dpkg-shlibdeps", "man"):
        if shutil.which(tool) is None:
            check(False, "%s is installed (tools/setup)" % tool)
            return
    if run("dpkg-query", "-W", "-f=${Status}", "reconciler").stdout.startswith("install ok"):
        print("SKIP: a reconciler package is installed here; not replacing it")
        return
    made = [p for p in ("/var/lib/reconciler", "/var/log/reconciler", "/etc/reconciler")
            if not os.path.exists(p)]
    had_user = run("getent", "passwd", "reconciler").returncode == 0
    tmp = tempfile.mkdtemp(prefix="reconciler-pkg-")
    try:
        deb = build_package(tmp)
        if deb:
            install_and_remove(deb)
    finally:
        run("dpkg", "--purge", "reconciler")
        for p in made:
            shutil.rmtree(p, ignore_errors=True)
        if not had_user:
            run("userdel", "reconciler")
            run("groupdel", "reconciler")
        shutil.rmtree(tmp, ignore_errors=True)


main()
done()
