-- Version 15: the card the user rejected for a contact (chat.RejectKey), remembered so
-- that later messages signed by it stay marked without raising the key-change warning
-- again; '' when none.
ALTER TABLE contacts ADD COLUMN rejected_card_id TEXT NOT NULL DEFAULT '';
