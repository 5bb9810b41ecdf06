-- What the inbox shows at a glance: the message's urgency and the reply deadline it asked for,
-- and a way to find the replies to a message (its status: answered, refused, delayed, overdue).

ALTER TABLE messages ADD COLUMN urgency TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN reply_deadline TEXT;
CREATE INDEX messages_replies ON messages (in_reply_to) WHERE in_reply_to != '';
