import t from 'tap';
import { GenerationCache } from '../../src/sql/generation-cache.js';

t.test('bounded by max, whatever is inserted', async (t) => {
  for (const max of [1, 2, 3, 10, 101]) {
    const c = new GenerationCache<number, number>(max);
    for (let i = 0; i < 1000; i++) {
      c.set(i, i * 2);
      t.ok(c.size <= max, `max ${max}: size ${c.size} after ${i + 1} inserts`);
    }
    t.equal(c.get(999), 1998, `max ${max}: the last entry is there`);
  }
});

t.test('an entry used in every generation stays; one never used again goes', async (t) => {
  const c = new GenerationCache<string, string>(10); // generations of 5
  c.set('hot', 'H');
  c.set('cold', 'C');
  for (let i = 0; i < 100; i++) {
    c.set(`k${i}`, `v${i}`);
    t.equal(c.get('hot'), 'H', `hot survives insert ${i}`);
  }
  t.equal(c.get('cold'), undefined, 'cold was dropped');
});

t.test('set replaces, false is a value, clear empties', async (t) => {
  const c = new GenerationCache<string, number | false>(4);
  c.set('a', 1);
  c.set('a', 2);
  t.equal(c.get('a'), 2);
  t.equal(c.size, 1);
  c.set('b', false);
  t.equal(c.get('b'), false);
  c.set('c', 3);
  c.set('d', 4); // a, b now old
  t.equal(c.get('a'), 2, 'found in the old generation');
  c.set('a', 5);
  t.equal(c.get('a'), 5, 'a set after promotion wins');
  t.ok(c.size <= 4);
  c.clear();
  t.equal(c.size, 0);
  t.equal(c.get('a'), undefined);
});
