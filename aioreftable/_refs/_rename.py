"""Rename and copy a ref with its reflog (git's reftable write_copy_table)."""

from __future__ import annotations

from .._errors import RefExistsError, RefMissingError, TransactionError
from .._format._records import LogRecord, RefRecord, RefValueType
from ._core import RefCore, decode_name, encode_name
from ._refname import reflog_message, require_refname

__all__ = ["copy_ref", "rename_ref"]


async def rename_ref(
    core: RefCore, old: str, new: str, message: str, *, force: bool = False
) -> None:
    """git's rename_ref: ``new`` takes ``old``'s value and reflog, ``old`` is deleted."""
    await _copy(core, old, new, message, delete_old=True, force=force)


async def copy_ref(core: RefCore, old: str, new: str, message: str, *, force: bool = False) -> None:
    """git's copy_ref: ``new`` gets ``old``'s value and a copy of its reflog."""
    await _copy(core, old, new, message, delete_old=False, force=force)


async def _copy(
    core: RefCore, old: str, new: str, message: str, *, delete_old: bool, force: bool
) -> None:
    for name in (old, new):
        require_refname(name, "format")
    old_raw = encode_name(old)
    null = core.hash.null_id
    msg = reflog_message(message, core.config.block_size)
    committer = await core.committer.get()  # off the loop, before the lock
    async with core.locked(new) as held:
        add, new_raw = held.addition, held.raw
        snap = add.snapshot
        rec = snap.ref(old_raw)  # git reads the old name from the new name's stack
        if rec is None:
            raise RefMissingError(f"refname {old} not found", old)
        if rec.value_type == RefValueType.SYMREF:
            raise TransactionError(
                f"refname {old} is a symbolic ref, copying it is not supported", old
            )
        if old == new:
            return
        if not force and snap.ref(new_raw) is not None:
            raise RefExistsError(f"cannot lock ref '{new}': reference already exists", new)
        view = held.view()
        await view.check_available(new, skip={old} if delete_old else frozenset())
        value = rec.oid
        deletion_ts = creation_ts = add.update_index
        if delete_old:
            creation_ts += 1
        add.writer.set_limits(deletion_ts, creation_ts)
        refs = [rec._replace(refname=new_raw, update_index=creation_ts)]
        if delete_old:
            refs.append(RefRecord.deletion(old_raw, deletion_ts))
        add.writer.add_refs(refs)
        ident = committer.at()

        def entry(name: bytes, ts: int, old_id: bytes, new_id: bytes) -> LogRecord:
            return LogRecord(
                name, ts, old_id=old_id, new_id=new_id, name=ident.name,
                email=ident.email, time=ident.time, tz_offset=ident.tz, message=msg,
            )  # fmt: skip

        logs: list[LogRecord] = []
        if delete_old:
            logs.append(entry(new_raw, deletion_ts, value, null))
            head = snap.ref(b"HEAD")
            if (
                head is not None
                and head.value_type == RefValueType.SYMREF
                and decode_name(head.symref_target) == old
            ):
                logs.append(entry(b"HEAD", deletion_ts, value, null))
        logs.append(entry(new_raw, creation_ts, null, value))
        for log in snap.iter_logs(old_raw):
            logs.append(log._replace(refname=new_raw))
            if delete_old:
                logs.append(LogRecord.deletion(old_raw, log.update_index))
        add.writer.add_logs(logs)
