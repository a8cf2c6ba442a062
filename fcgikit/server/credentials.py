"""Who a pool's workers run as (``--user`` / ``--group``): resolved once in the master, which
binds the sockets and may need root for that, and applied in each worker after the fork,
before it imports the app."""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass

from fcgikit.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who the workers run as: resolved once in the master, applied after each fork."""

    uid: int
    gid: int
    name: str | None

    @classmethod
    def resolve(cls, user: str | None, group: str | None) -> Credentials | None:
        if user is None and group is None:
            return None
        if os.geteuid() != 0:
            raise ConfigError("--user / --group need the master to start as root")
        uid, gid, name = os.getuid(), os.getgid(), None
        if user is not None:
            try:
                entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            except KeyError:
                raise ConfigError(f"--user {user}: no such user") from None
            uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
        if group is not None:
            try:
                gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
            except KeyError:
                raise ConfigError(f"--group {group}: no such group") from None
        return cls(uid, gid, name)

    def apply(self) -> None:
        """In a worker, before it imports the app: drop root for good."""
        if self.name is not None:
            os.initgroups(self.name, self.gid)
        else:
            os.setgroups([])
        os.setgid(self.gid)
        os.setuid(self.uid)
