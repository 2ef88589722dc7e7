// Synthetic billed rows for the billing benchmarks: `SELECT`s to put after `INSERT INTO <table>`,
// over numbers(rows): 5 sites, 200 ads, 20 campaigns, 100,000 users, November 2026 in UTC.

/** exposure_minutes rows: 4 per page view over two impressions, one per minute of the month cycling. */
export function minuteRowsSelect(rows, { viewableMs = '1000 + number % 59000', version = 1, where = '' } = {}) {
  return `SELECT concat('site-', toString(number % 5)), concat('pv-', toString(intDiv(number, 4))), concat('pv-', toString(intDiv(number, 4)), '-', toString(number % 2)),
             toDateTime('2026-11-01 00:00:00', 'UTC') + toIntervalMinute(number % 43200),
             concat('user-', toString(number % 100000)), concat('ad-', toString(number % 200)), concat('campaign-', toString(number % 20)),
             ${viewableMs}, 1, ${version}
      FROM numbers(${rows}) ${where}`;
}

/** impressions rows: two per page view, two in three billable; `superseded`: turned non-billable. */
export function impressionRowsSelect(rows, { superseded = false, version = 1, where = '' } = {}) {
  const values = superseded
    ? '1, 0, 0, 0, 0, 0'
    : '1, number % 3 != 0, number % 3 != 0, if(number % 3 != 0, 1000 + number % 59000, 0), 1000 + number % 59000, 1000 + number % 59000';
  return `SELECT concat('site-', toString(number % 5)), concat('pv-', toString(intDiv(number, 2))), concat('pv-', toString(intDiv(number, 2)), '-', toString(number % 2)),
             concat('user-', toString(number % 100000)), concat('ad-', toString(number % 200)), concat('campaign-', toString(number % 20)),
             'display', 300, 250, ${values},
             [], toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalSecond(number % 2592000), toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalSecond(number % 2592000), 1, 1, ${version}, 0
      FROM numbers(${rows}) ${where}`;
}
