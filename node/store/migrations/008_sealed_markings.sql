-- A row's handling codes, and how its content is sealed (keys.aad_for): rows from before this
-- migration (seal 1) name only sender and id in their associated data; new rows (seal 2) also
-- bind purpose, TLP and handling codes, so changing them in the database makes the row
-- unopenable. A reader also checks access against the markings inside the content.
ALTER TABLE messages ADD COLUMN handling_codes TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN seal INTEGER NOT NULL DEFAULT 1;
