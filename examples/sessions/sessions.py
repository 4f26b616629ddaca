import json
import random
from datetime import datetime
from uuid import uuid4

active_sessions: dict[str, dict] = {}
session_counter = 0


def produce(params: dict) -> list[str]:
    global session_counter
    ts: datetime = params['timestamp']
    events = []
    if random.random() < 0.3:
        session_counter += 1
        session_id = str(uuid4())
        active_sessions[session_id] = {
            'user': f'user_{session_counter}',
            'started': ts.isoformat(),
            'page_views': 0,
        }
        events.append(json.dumps({
            'timestamp': ts.isoformat(),
            'event': 'session_start',
            'session_id': session_id,
            'user': active_sessions[session_id]['user'],
        }))
    for sid, session in list(active_sessions.items()):
        session['page_views'] += 1
        events.append(json.dumps({
            'timestamp': ts.isoformat(),
            'event': 'page_view',
            'session_id': sid,
            'user': session['user'],
            'page': random.choice(['/home', '/products', '/cart', '/checkout']),
            'total_views': session['page_views'],
        }))
        if session['page_views'] > random.randint(5, 20):
            events.append(json.dumps({
                'timestamp': ts.isoformat(),
                'event': 'session_end',
                'session_id': sid,
                'user': session['user'],
                'total_views': session['page_views'],
            }))
            del active_sessions[sid]
    return events
