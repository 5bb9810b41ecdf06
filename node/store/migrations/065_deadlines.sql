-- Deadlines of requests (Directive (EU) 2023/977, node/deadlines.py): a delay notice's new date
-- for the answer, so overdue requests are found without opening bodies; and a way to find the
-- answers to a request from either side.
ALTER TABLE messages ADD COLUMN expected_by TEXT;
CREATE INDEX messages_requests ON messages (type, direction) WHERE type = 'REQUEST_INFO';
