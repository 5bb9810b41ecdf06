-- A reply's thread (its correlation id) decides whether it needs a second person's approval
-- (an agreement's TYPE>REPLIED_TYPE rules): received messages are found by thread.
CREATE INDEX messages_thread ON messages (correlation_id) WHERE direction = 'in';
