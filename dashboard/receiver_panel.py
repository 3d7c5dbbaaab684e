"""The DICOM receiver's state on the Dose reports page: listening or not, the last object
received, today's counts, and the objects refused with their reasons.

The state comes from the receiving log the receiver keeps in the database
(audit.dicom_net.receiver_overview), so the page needs no connection to the receiver itself.
Reasons and AE titles are senders' text: drawn in a table or through plain(), never as
Markdown.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from audit.dicom_net import receiver_overview
from dashboard import state, tables
from dashboard.widgets import plain

#: Each receipt's outcome in words.
OUTCOMES = {"imported": "Imported", "duplicate": "Duplicate", "rejected": "Rejected",
            "refused": "Sender not allowed"}
VIA = {"receive": "Sent to the receiver", "fetch": "Fetched from PACS"}
NAMES = {"received_at": "Received", "via": "How", "calling_ae": "Sender (AE title)",
         "peer_address": "Sender address", "outcome": "Outcome", "reason": "Reason"}


def _when(value: Any) -> str:
    zone, _name = tables.display_zone()
    return tables.local_text(value, zone) or ""


def show() -> None:
    """Draw the panel (called by the Dose reports page)."""
    st.subheader("DICOM receiver")
    overview = receiver_overview(state.engine())
    listener = overview.listener
    if overview.listening and listener is not None:
        st.success(plain(f"Listening as {listener['ae_title']} on port {listener['port']} "
                         f"({listener['host']}{', TLS' if listener['tls'] else ''}); last sign "
                         f"of life {_when(listener['heartbeat_at'])}."))
    elif listener is None:
        st.info("Not listening: the receiver has never run. Start it with "
                "`fluoro-audit receive`, or have the dashboard start it (receiver setting "
                "'DICOM receiver: started with the dashboard').")
    else:
        ended = (f"stopped {_when(listener['stopped_at'])}" if listener["stopped_at"]
                 else f"no sign of life since {_when(listener['heartbeat_at'])}")
        st.warning(plain(f"Not listening: the receiver ({listener['ae_title']}, port "
                         f"{listener['port']}) {ended}."))
    last = overview.last_received
    if last is not None:
        sender = last["calling_ae"] or "unknown sender"
        address = last["peer_address"] or "address unknown"
        st.text(f"Last object received {_when(last['received_at'])} from {sender} "
                f"({address}): {OUTCOMES.get(last['outcome'], last['outcome'])}")
    cols = st.columns(4)
    cols[0].metric("Imported today", overview.today["imported"])
    cols[1].metric("Duplicates today", overview.today["duplicate"])
    cols[2].metric("Rejected today", overview.today["rejected"])
    cols[3].metric("Senders refused today", overview.today["refused"])
    if overview.refused:
        st.caption("Objects rejected and senders refused, latest first, with the reason.")
        frame = pd.DataFrame(overview.refused)[list(NAMES)]
        tables.show(frame, names=NAMES, enums={"outcome": OUTCOMES, "via": VIA})
