#!/bin/bash
# The "Complete Example" of seed 002 (docs tutorial), verbatim except that BASE_URL
# comes from the environment so the test can point it at a server on a free port.

BASE_URL="${BASE_URL:-http://localhost:9000}"
API_KEY="evr_your-api-key"

# 1. Create an agent
AGENT=$(curl -s -X POST "$BASE_URL/v1/agents" \
  -H "Authorization: $API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "name": "Assistant",
    "system_prompt": "You are a helpful assistant."
  }')

AGENT_ID=$(echo $AGENT | jq -r '.id')
echo "Created agent: $AGENT_ID"

# 2. Create a session
SESSION=$(curl -s -X POST "$BASE_URL/v1/agents/$AGENT_ID/sessions" \
  -H "Authorization: $API_KEY" \
  -H "Content-Type: application/json" \
  -d '{"title": "Test Chat"}')

SESSION_ID=$(echo $SESSION | jq -r '.id')
echo "Created session: $SESSION_ID"

# 3. Send a message
MESSAGE=$(curl -s -X POST "$BASE_URL/v1/agents/$AGENT_ID/sessions/$SESSION_ID/messages" \
  -H "Authorization: $API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "role": "user",
    "content": {"text": "Hello! What can you help me with?"}
  }')

echo "Sent message: $(echo $MESSAGE | jq -r '.id')"

# 4. Wait for processing and get messages
sleep "${WALKTHROUGH_WAIT:-2}"

MESSAGES=$(curl -s "$BASE_URL/v1/agents/$AGENT_ID/sessions/$SESSION_ID/messages" \
  -H "Authorization: $API_KEY")

echo "Conversation:"
echo $MESSAGES | jq '.data[] | "\(.role): \(.content.text)"'
