// Spark SQL for the editor: a CodeMirror SQL dialect (keywords, types, common built-in
// functions, backquoted identifiers, "…" strings) and the words the local completion offers
// when the gateway cannot complete.

import { SQLDialect } from "../vendor/codemirror.js";

// Spark SQL's keywords (docs: "SQL Syntax › Keywords"), reserved or not; null, true and false
// are left to the SQL grammar, which colours them as constants.
const KEYWORDS = `
add after aggregate all alter always analyze and anti any archive array as asc at authorization
between binding both bucket buckets by cache call called cascade case cast catalog catalogs change
check clear cluster clustered code codegen collate collation collection column columns comment
commit compact compactions compensation compute concatenate constraint contains cost create cross
cube current current_date current_time current_timestamp current_user data database databases
datetime day days dayofyear dbproperties declare default defined definer delete delimited desc
describe deterministic dfs directories directory distinct distribute div do drop else end escape
escaped evolution except exchange exclude execute exists explain export extended external extract
fetch fields fileformat filter first following for foreign format formatted from full
function functions generated global grant group grouping having hour hours identifier if ignore
ilike immediate import in include increment index indexes inner inpath input inputformat insert
intersect interval into invoker is items iterate join keys language last lateral lazy leading
leave left like limit lines list load local location lock locks logical loop macro map matched
merge microsecond microseconds millisecond milliseconds minus minute minutes modifies month months
msck name namespace namespaces natural no not nulls of offset on only option options or
order out outer outputformat over overlaps overlay overwrite partition partitioned partitions
percent pivot placing position preceding primary principals properties purge qualify quarter
query range reads recordreader recordwriter recover recursive reduce references refresh rename
repair repeat repeatable replace reset respect restrict return returns revoke right rlike role
roles rollback rollup row rows schema schemas second seconds security select semi separated serde
serdeproperties session_user set sets show single skewed some sort sorted source specific sql
start statistics stored stratify struct substr substring sync system_time system_version table
tables tablesample target tblproperties temp temporary terminated then time timediff timestamp
timestampadd timestampdiff to touch trailing transaction transactions transform trim truncate
try_cast type unarchive unbounded uncache union unique unlock unpivot unset until update
use user using value values var variable variant version view views void week weeks when where
while window with within year years zone`;

const TYPES = `
bigint binary boolean byte char date dec decimal double float int integer long numeric real short
smallint string timestamp_ltz timestamp_ntz tinyint varchar`;

// The functions one types most; the gateway's completion knows them all, with signatures.
const FUNCTIONS = `
abs acos aggregate approx_count_distinct approx_percentile array_agg array_contains array_distinct
array_except array_intersect array_join array_max array_min array_position array_remove
array_repeat array_size array_sort array_union arrays_zip ascii asin atan atan2 avg base64 bin
bit_length bool_and bool_or btrim cardinality cbrt ceil ceiling char_length coalesce collect_list
collect_set concat concat_ws contains conv corr cos count count_if covar_pop covar_samp crc32
cume_dist current_catalog current_database current_schema date_add date_diff date_format
date_from_unix_date date_part date_sub date_trunc datediff day dayofmonth dayofweek decode degrees
dense_rank element_at endswith every exp explode explode_outer expm1 factorial filter
first_value flatten floor format_number format_string from_json from_unixtime from_utc_timestamp
get_json_object greatest hash hex hour ifnull initcap inline instr isnan isnotnull isnull
json_array_length json_object_keys json_tuple kurtosis lag last_day last_value lcase lead least
left length levenshtein ln locate log log10 log2 lower lpad ltrim make_date make_interval
make_timestamp map_concat map_entries map_filter map_from_arrays map_from_entries map_keys
map_values max max_by md5 mean median min min_by minute mod monotonically_increasing_id month
months_between named_struct nanvl negative next_day now nth_value ntile nullif nvl nvl2
octet_length percent_rank percentile percentile_approx pi pmod posexplode position positive pow
power quarter radians raise_error rand randn rank reflect regexp regexp_count regexp_extract
regexp_extract_all regexp_like regexp_replace regexp_substr repeat replace reverse right rint round
row_number rpad rtrim schema_of_json second sentences sequence sha sha1 sha2 shuffle sign signum
sin size skewness slice sort_array soundex space split split_part sqrt stack startswith std
stddev stddev_pop stddev_samp str_to_map struct substr substring substring_index sum tan
to_char to_date to_json to_number to_timestamp to_unix_timestamp to_utc_timestamp transform
translate trim trunc try_add try_avg try_divide try_element_at try_multiply try_subtract try_sum
try_to_number try_to_timestamp typeof ucase unbase64 unhex unix_date unix_micros unix_millis
unix_seconds unix_timestamp upper uuid var_pop var_samp variance weekday weekofyear when
width_bucket xxhash64 year zip_with`;

const words = (text) => text.trim().split(/\s+/);
const spaced = (text) => words(text).join(" ");  // SQLDialect splits its lists at single spaces

export const SPARK_SQL = SQLDialect.define({
  keywords: spaced(KEYWORDS),
  types: spaced(TYPES),
  builtin: spaced(FUNCTIONS),
  backslashEscapes: true,   // 'it\'s' is a string in Spark SQL
  doubleQuotedStrings: true,  // "…" is a string, `…` an identifier
  identifierQuotes: "`",
  caseInsensitiveIdentifiers: true,
  operatorChars: "*+-%<>!=&|~^/:",  // :: casts
});

/** What the local completion offers in SQL when the gateway cannot complete. */
export const SQL_WORDS = {
  keywords: [...words(KEYWORDS), "null", "true", "false"].map((w) => w.toUpperCase()),
  types: words(TYPES).map((w) => w.toUpperCase()),
  functions: words(FUNCTIONS),
};

/** The same for Python: keywords, and the builtins (and the notebook's own names). */
export const PYTHON_WORDS = {
  keywords: words(`False None True and as assert async await break case class continue def del elif else
    except finally for from global if import in is lambda match nonlocal not or pass raise return try
    while with yield`),
  functions: words(`abs all any bool bytes callable chr dict dir display divmod enumerate filter float
    format frozenset getattr hasattr hash help id input int isinstance issubclass iter len list map max
    min next object open ord pow print range repr reversed round set setattr slice sorted str sum super
    tuple type vars zip`),
  variables: ["spark"],
};
