-- Version 14: the incoming messages never marked read that carry a reason — a
-- placeholder filled by its resend after the user had seen it (replaceMessage) —
-- indexed apart, so that a contact's unread count (contactQuery) looks at those few
-- and not at every unread message: through messages_unread it visited each of a
-- thousand unread messages on every read of the contact, once per message received.
CREATE INDEX messages_unread_filled ON messages (contact) WHERE direction = 1 AND state < 3 AND reason <> '';
