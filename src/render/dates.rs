//! Dates as Ansible's templates have them: the `strftime` filter (C's
//! strftime of the controller's local time, or UTC, as Python's
//! `time.strftime` calls it), `to_datetime` and `now()`, whose values are
//! Python datetimes: `year` .. `microsecond`, `strftime()`, `isoformat()`,
//! printed as `str()` prints them; the difference of two is a timedelta
//! (`days`, `seconds`, `microseconds`, `total_seconds()`), reached through
//! `__deploy_dt_sub`, which render::rewrite puts where a template subtracts
//! them (minijinja lets no value define `-`).

use std::sync::Arc;

use minijinja::value::{Kwargs, Object, Value};
use minijinja::{Environment, Error as MjError, ErrorKind, State};

fn err(msg: impl Into<String>) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, msg.into())
}

/// A naive datetime (no zone), as Python's `datetime.datetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DateTime {
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    us: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl DateTime {
    fn from_tm(tm: &libc::tm, us: u32) -> DateTime {
        DateTime {
            y: i64::from(tm.tm_year) + 1900,
            mo: tm.tm_mon as u32 + 1,
            d: tm.tm_mday as u32,
            h: tm.tm_hour as u32,
            mi: tm.tm_min as u32,
            s: tm.tm_sec as u32,
            us,
        }
    }

    fn tm(&self) -> libc::tm {
        let days = days_from_civil(self.y, self.mo, self.d);
        // SAFETY: libc::tm is plain data; all-zero is a valid value
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        tm.tm_year = (self.y - 1900) as i32;
        tm.tm_mon = self.mo as i32 - 1;
        tm.tm_mday = self.d as i32;
        tm.tm_hour = self.h as i32;
        tm.tm_min = self.mi as i32;
        tm.tm_sec = self.s as i32;
        tm.tm_wday = (days + 4).rem_euclid(7) as i32;
        tm.tm_yday = (days - days_from_civil(self.y, 1, 1)) as i32;
        tm.tm_isdst = -1;
        tm
    }

    /// `datetime.strftime`: C's, with Python's %f, and %z / %Z empty for a
    /// naive datetime.
    fn strftime(&self, fmt: &str) -> Result<String, MjError> {
        let mut f = String::new();
        let mut it = fmt.chars();
        while let Some(c) = it.next() {
            match (c, c == '%') {
                ('%', true) => match it.next() {
                    Some('f') => f.push_str(&format!("{:06}", self.us)),
                    Some('z' | 'Z') => {}
                    Some(o) => {
                        f.push('%');
                        f.push(o);
                    }
                    None => f.push('%'),
                },
                _ => f.push(c),
            }
        }
        c_strftime(&f, &self.tm())
    }
}

impl DateTime {
    /// Microseconds since 1970-01-01 00:00 of this naive datetime.
    fn micros(&self) -> i128 {
        let secs = days_from_civil(self.y, self.mo, self.d) * 86_400
            + i64::from(self.h) * 3600
            + i64::from(self.mi) * 60
            + i64::from(self.s);
        i128::from(secs) * 1_000_000 + i128::from(self.us)
    }
}

/// Python's `datetime.timedelta`, normalised as it is: 0 <= seconds <
/// 86400, 0 <= microseconds < 1e6, days carrying the sign.
#[derive(Debug, Clone, Copy)]
struct TimeDelta {
    days: i64,
    seconds: i64,
    micros: i64,
}

impl TimeDelta {
    fn of(total_micros: i128) -> TimeDelta {
        let day = 86_400_000_000i128;
        let days = total_micros.div_euclid(day);
        let rest = total_micros.rem_euclid(day);
        TimeDelta { days: days as i64, seconds: (rest / 1_000_000) as i64, micros: (rest % 1_000_000) as i64 }
    }
}

impl std::fmt::Display for TimeDelta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.days != 0 {
            let plural = if self.days.abs() == 1 { "" } else { "s" };
            write!(f, "{} day{plural}, ", self.days)?;
        }
        write!(f, "{}:{:02}:{:02}", self.seconds / 3600, self.seconds / 60 % 60, self.seconds % 60)?;
        if self.micros != 0 {
            write!(f, ".{:06}", self.micros)?;
        }
        Ok(())
    }
}

impl Object for TimeDelta {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        // printed as str() prints it, not as a mapping
        minijinja::value::ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from(match key.as_str()? {
            "days" => self.days,
            "seconds" => self.seconds,
            "microseconds" => self.micros,
            _ => return None,
        }))
    }

    fn call_method(self: &Arc<Self>, _state: &State, method: &str, _args: &[Value]) -> Result<Value, MjError> {
        match method {
            "total_seconds" => {
                Ok(Value::from(self.days as f64 * 86_400.0 + self.seconds as f64 + self.micros as f64 / 1e6))
            }
            _ => Err(MjError::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.as_ref(), f)
    }
}

impl std::fmt::Display for DateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02} {:02}:{:02}:{:02}", self.y, self.mo, self.d, self.h, self.mi, self.s)?;
        if self.us != 0 {
            write!(f, ".{:06}", self.us)?;
        }
        Ok(())
    }
}

impl Object for DateTime {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        // printed as str() prints it, not as a mapping
        minijinja::value::ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(Value::from(match key.as_str()? {
            "year" => self.y,
            "month" => i64::from(self.mo),
            "day" => i64::from(self.d),
            "hour" => i64::from(self.h),
            "minute" => i64::from(self.mi),
            "second" => i64::from(self.s),
            "microsecond" => i64::from(self.us),
            _ => return None,
        }))
    }

    fn call_method(self: &Arc<Self>, _state: &State, method: &str, args: &[Value]) -> Result<Value, MjError> {
        match method {
            "strftime" => {
                let (fmt,): (String,) = minijinja::value::from_args(args)?;
                self.strftime(&fmt).map(Value::from)
            }
            "isoformat" => Ok(Value::from(self.to_string().replacen(' ', "T", 1))),
            "weekday" => Ok(Value::from((days_from_civil(self.y, self.mo, self.d) + 3).rem_euclid(7))),
            _ => Err(MjError::from(ErrorKind::UnknownMethod)),
        }
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.as_ref(), f)
    }
}

/// C's strftime of `tm` (the process never calls setlocale: the C locale,
/// as in Python, which sets only LC_CTYPE).
fn c_strftime(fmt: &str, tm: &libc::tm) -> Result<String, MjError> {
    if fmt.is_empty() {
        return Ok(String::new());
    }
    let cfmt = std::ffi::CString::new(fmt).map_err(|_| err("strftime: a format cannot hold a NUL"))?;
    let mut size = 256 + fmt.len() * 8;
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: buf holds `size` bytes; cfmt is NUL-terminated; tm is valid
        let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), size, cfmt.as_ptr(), tm) };
        if n > 0 || size > 1 << 16 {
            buf.truncate(n);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        size *= 4;
    }
}

/// The broken-down time of `secs` since the epoch: local (the controller's
/// TZ), or UTC.
fn broken_down(secs: i64, utc: bool) -> Result<libc::tm, MjError> {
    let t = secs as libc::time_t;
    // SAFETY: all-zero is a valid tm; the *_r functions write only into it
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        if utc {
            !libc::gmtime_r(&t, &mut tm).is_null()
        } else {
            // (glibc reads TZ on its first use)
            !libc::localtime_r(&t, &mut tm).is_null()
        }
    };
    ok.then_some(tm).ok_or_else(|| err(format!("strftime: {secs} is out of range")))
}

/// Python's `datetime.strptime` for the directives a date usually has.
fn strptime(text: &str, fmt: &str) -> Result<DateTime, MjError> {
    let bad = || err(format!("to_datetime: time data '{text}' does not match format '{fmt}'"));
    let mut dt = DateTime { y: 1900, mo: 1, d: 1, h: 0, mi: 0, s: 0, us: 0 };
    let (mut t, mut f) = (text, fmt.chars());
    let num = |t: &mut &str, max: usize| -> Result<u32, MjError> {
        let n = t.chars().take(max).take_while(|c| c.is_ascii_digit()).count();
        let v = t[..n].parse::<u32>().map_err(|_| bad())?;
        *t = &t[n..];
        Ok(v)
    };
    while let Some(c) = f.next() {
        if c != '%' {
            t = t.strip_prefix(c).ok_or_else(bad)?;
            continue;
        }
        match f.next() {
            Some('Y') => dt.y = i64::from(num(&mut t, 4)?),
            Some('y') => {
                let y = i64::from(num(&mut t, 2)?);
                dt.y = if y < 69 { 2000 + y } else { 1900 + y };
            }
            Some('m') => dt.mo = num(&mut t, 2)?,
            Some('d') => dt.d = num(&mut t, 2)?,
            Some('H') => dt.h = num(&mut t, 2)?,
            Some('M') => dt.mi = num(&mut t, 2)?,
            Some('S') => dt.s = num(&mut t, 2)?,
            Some('f') => {
                let n = t.chars().take(6).take_while(|c| c.is_ascii_digit()).count();
                dt.us = num(&mut t, 6)? * 10u32.pow(6 - n as u32);
            }
            Some('%') => t = t.strip_prefix('%').ok_or_else(bad)?,
            Some(o) => {
                return Err(err(format!(
                "to_datetime: the format directive %{o} is not supported by deploy (it has %Y %y %m %d %H %M %S %f)"
            )))
            }
            None => return Err(bad()),
        }
    }
    let days_in =
        |y: i64, m: u32| days_from_civil(if m == 12 { y + 1 } else { y }, m % 12 + 1, 1) - days_from_civil(y, m, 1);
    let valid = t.is_empty()
        && (1..=12).contains(&dt.mo)
        && dt.d >= 1
        && i64::from(dt.d) <= days_in(dt.y, dt.mo)
        && dt.h < 24
        && dt.mi < 60
        && dt.s < 60;
    valid.then_some(dt).ok_or_else(bad)
}

/// A local datetime of `t`.
fn local(t: std::time::SystemTime) -> Value {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    match broken_down(d.as_secs() as i64, false) {
        Ok(tm) => Value::from_object(DateTime::from_tm(&tm, d.subsec_micros())),
        Err(_) => Value::UNDEFINED,
    }
}

/// The variables Ansible's template module gives a template, above all
/// others: `template_path` (the name as the role writes it),
/// `template_fullpath`, `template_destpath`, `template_host` (this
/// machine), `template_uid` (the template's owner), `template_mtime` and
/// `template_run_date` (local datetimes).
pub(crate) fn template_vars(name: &str, full: &std::path::Path, dest: &str) -> Value {
    use std::os::unix::fs::MetadataExt;
    // this machine's name and accounts, read once per run, not per template and host
    static MACHINE: std::sync::OnceLock<(String, std::collections::HashMap<u32, String>)> = std::sync::OnceLock::new();
    let (host, users) = MACHINE.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let users = passwd
            .lines()
            .rev() // the first line of a uid wins, as getpwuid has it
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some((f.get(2)?.parse().ok()?, f[0].to_string()))
            })
            .collect();
        (host, users)
    });
    let meta = std::fs::metadata(full).ok();
    let uid = meta.as_ref().map(|m| m.uid()).unwrap_or_default();
    let owner = users.get(&uid).cloned().unwrap_or_else(|| uid.to_string());
    let full = std::fs::canonicalize(full).unwrap_or_else(|_| full.to_path_buf());
    minijinja::context! {
        template_path => name,
        template_fullpath => full.display().to_string(),
        template_destpath => dest,
        template_host => host,
        template_uid => owner,
        template_mtime => meta.and_then(|m| m.modified().ok()).map(local).unwrap_or_default(),
        template_run_date => local(std::time::SystemTime::now()),
    }
}

/// Register `strftime`, `to_datetime` and `now`.
pub(crate) fn add(env: &mut Environment<'static>) {
    env.add_filter("strftime", |fmt: String, second: Option<Value>, kw: Kwargs| -> Result<String, MjError> {
        let utc: Option<bool> = kw.get("utc")?;
        kw.assert_all_used()?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64());
        let secs = match second.filter(|s| !s.is_none() && !s.is_undefined()) {
            Some(s) => super::pyfmt::py_str(&s)
                .trim()
                .parse::<f64>()
                .map_err(|_| err(format!("Invalid value for epoch value ({s})")))?,
            None => now.unwrap_or_default(),
        };
        c_strftime(&fmt, &broken_down(secs.floor() as i64, utc.unwrap_or(false))?)
    });
    env.add_filter("to_datetime", |text: String, fmt: Option<String>| -> Result<Value, MjError> {
        let dt = strptime(&text, fmt.as_deref().unwrap_or("%Y-%m-%d %H:%M:%S"))?;
        Ok(Value::from_object(dt))
    });
    env.add_function("__deploy_dt_sub", |a: Value, b: Value| -> Result<Value, MjError> {
        match (a.downcast_object_ref::<DateTime>(), b.downcast_object_ref::<DateTime>()) {
            (Some(a), Some(b)) => Ok(Value::from_object(TimeDelta::of(a.micros() - b.micros()))),
            _ => Err(err(format!(
                "unsupported operand type(s) for -: {} and {} (deploy subtracts two datetimes)",
                a.kind(),
                b.kind()
            ))),
        }
    });
    env.add_function("now", |kw: Kwargs| -> Result<Value, MjError> {
        let utc: Option<bool> = kw.get("utc")?;
        let fmt: Option<String> = kw.get("fmt")?;
        kw.assert_all_used()?;
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let tm = broken_down(d.as_secs() as i64, utc.unwrap_or(false))?;
        let dt = DateTime::from_tm(&tm, d.subsec_micros());
        match fmt {
            Some(f) => dt.strftime(&f).map(Value::from),
            None => Ok(Value::from_object(dt)),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_python_has_them() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 3, 1), 19_783);
        let dt = strptime("2024-03-01 10:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(dt.to_string(), "2024-03-01 10:00:00");
        assert_eq!(dt.strftime("%A %j %b|%f|%z|%%").unwrap(), "Friday 061 Mar|000000||%");
        assert!(strptime("2023-02-29 00:00:00", "%Y-%m-%d %H:%M:%S").is_err());
        assert_eq!(strptime("5/1/24", "%d/%m/%y").unwrap().to_string(), "2024-01-05 00:00:00");
        assert_eq!(c_strftime("%Y-%m-%d %H:%M", &broken_down(3600, true).unwrap()).unwrap(), "1970-01-01 01:00");
        let later = strptime("2024-03-02 00:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let d = |a: &DateTime, b: &DateTime| TimeDelta::of(a.micros() - b.micros()).to_string();
        assert_eq!((d(&later, &dt), d(&dt, &later)), ("14:00:00".into(), "-1 day, 10:00:00".into()));
        let far = strptime("2024-03-04 10:00:00.5", "%Y-%m-%d %H:%M:%S.%f").unwrap();
        assert_eq!(d(&far, &dt), "3 days, 0:00:00.500000");
    }
}
