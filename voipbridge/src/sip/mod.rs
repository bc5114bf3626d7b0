//! SIP signalling: message layer, transactions, dialogs, registration, calls.
