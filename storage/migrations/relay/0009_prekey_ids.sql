-- pfschat relay store: an index of the prekeys' ids without their data. prekeys is a
-- WITHOUT ROWID table whose ML-KEM rows (about 1.2 KB) spill into overflow pages, and
-- every range scan over it (a card's counts and id lists, answered on each upload and
-- status request) read every row's whole payload to compare keys; this index answers
-- them from a few small pages.
CREATE INDEX prekeys_ids ON prekeys (card_id, kind);
