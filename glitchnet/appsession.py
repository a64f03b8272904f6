"""The one place GlitchNet reaches past Streamlit's public API: letting go of a visitor's uploaded files.

Streamlit keeps every uploaded file's bytes in the server's memory until the browser tab closes; it has no public call
to free them sooner (an uploader given a new key draws empty, but the old files stay in its upload manager). A hosted
server that classified a visitor's 40 MB batch would hold it for as long as the tab stays open. ``forget_uploads``
removes them through the runtime's upload manager (``Runtime.uploaded_file_mgr.remove_file``, with the session id of
the script run that calls it). That is internal API, so it is kept here, behind a pinned range (``streamlit>=1.40,
<1.68`` in pyproject.toml) that ``tests/test_appsession.py`` checks against the installed Streamlit, and it degrades
to doing nothing (the files go when the tab closes) if the runtime is absent or its API changed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

LOG = logging.getLogger("glitchnet.appsession")


def forget_uploads(uploads: Iterable[Any]) -> int:
    """Remove the given ``UploadedFile`` objects' bytes from Streamlit's upload manager now, and close them. Returns
    how many were removed (0 outside a running Streamlit server, e.g. under AppTest, or if its internals moved)."""
    uploads = list(uploads)
    for upload in uploads:
        upload.close()
    try:
        from streamlit import runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx
    except ImportError:  # pragma: no cover - guarded by the pinned range
        return 0
    ctx = get_script_run_ctx()
    if ctx is None or not runtime.exists():
        return 0
    try:
        manager = runtime.get_instance().uploaded_file_mgr
        for upload in uploads:
            manager.remove_file(ctx.session_id, upload.file_id)
    except AttributeError as exc:  # a Streamlit outside the pinned range: keep serving, the tab's close frees them
        LOG.warning("could not free uploaded files early (%s); they are freed when the tab closes", exc)
        return 0
    return len(uploads)
