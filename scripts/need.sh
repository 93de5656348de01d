# Sourced by the scripts that install what they need: `need_install WHAT
# PKG...` installs the Debian packages PKG... with apt-get when run as root,
# and otherwise prints the exact command and fails. WHAT names the caller
# ("make test") in the message. Callers collect the missing packages
# themselves, each by the test that fits it (a command, a library).
need_install() {
	local what=$1
	shift
	[ $# -gt 0 ] || return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "== $what: installing $*"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
	else
		echo "$what needs: $*" >&2
		echo "install them as root with:" >&2
		echo "  apt-get update -qq && apt-get install -y -qq $*" >&2
		return 1
	fi
}
