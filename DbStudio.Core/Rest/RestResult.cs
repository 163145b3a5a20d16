// Stage 5's output: what a REST or RPC request came to, in the request's own terms — the rows (as the JSON or CSV the
// response carries), how many, where the page starts, the total and whether PostgreSQL estimated it, the preferences
// that were applied, the created row's address — or an error. Nothing here is HTTP: Web/Apis/RestResponses turns a
// result into status, Content-Range, Preference-Applied and the body (as PostgREST's Response.hs), and the Data tab
// (Panel/TableBrowser) reads it as it is.
using System.Text.Json;

namespace DbStudio.Core.Rest;

/// <summary>What kind of answer a request got.</summary>
public enum RestOutcome
{
    /// <summary>A page of rows read (GET/HEAD on a table, a set-returning function): <see cref="RestResult.Offset"/>,
    /// <see cref="RestResult.Rows"/> and <see cref="RestResult.Total"/> say which part of how many.</summary>
    Page,
    /// <summary>Rows inserted (POST).</summary>
    Created,
    /// <summary>Rows updated or deleted (PATCH, DELETE).</summary>
    Changed,
    /// <summary>A function's one value (not a set).</summary>
    Value,
    /// <summary>A function that returns nothing (void).</summary>
    Nothing,
}

/// <summary>What the body holds.</summary>
public enum BodyFormat
{
    /// <summary>A JSON array of row objects (or a function's JSON value).</summary>
    Json,
    /// <summary>One JSON object (Accept: application/vnd.pgrst.object+json).</summary>
    Object,
    /// <summary>CSV: a header line, then one line per row (Accept: text/csv).</summary>
    Csv,
}

public enum TxPref { Unset, Commit, Rollback }

/// <summary>The preferences (Prefer header) that the request was run with — those asked for and honoured, never more.</summary>
public sealed record AppliedPreferences
{
    public static readonly AppliedPreferences None = new();

    public ResolutionPref Resolution { get; init; }
    public bool MissingDefault { get; init; }
    public ReturnPref Return { get; init; }
    public CountPref Count { get; init; }
    public TxPref Tx { get; init; }
    /// <summary>RPC: the body was passed as the function's one json/jsonb argument (params=single-object).</summary>
    public bool SingleObject { get; init; }
}

/// <summary>A request that failed: its HTTP status is part of the error, as PostgREST's Error.hs defines each error's.</summary>
public sealed record RestFailure(int Status, RestError Error);

/// <summary>The result of one REST or RPC request (see the file header).</summary>
public sealed class RestResult
{
    public RestOutcome Outcome { get; init; }
    /// <summary>Set when the request failed; nothing else is then.</summary>
    public RestFailure? Failure { get; init; }
    /// <summary>The rows (or value) as the response carries them; null when nothing is returned (return=minimal, HEAD-less writes).</summary>
    public ReadOnlyMemory<byte>? Body { get; init; }
    public BodyFormat Format { get; init; }
    /// <summary>Rows on this page, or rows written.</summary>
    public long Rows { get; init; }
    /// <summary>The page's first row's position among all (reads).</summary>
    public long Offset { get; init; }
    /// <summary>All rows the request matches (reads), or the rows written (writes), when a count was asked for.</summary>
    public long? Total { get; init; }
    /// <summary>The total is the planner's estimate (count=planned|estimated on a large table), not a count.</summary>
    public bool TotalIsEstimate { get; init; }
    public AppliedPreferences Applied { get; init; } = AppliedPreferences.None;
    /// <summary>return=headers-only: the created row's address, `/table?pk=eq.value`.</summary>
    public string? Location { get; init; }

    public static RestResult Fail(int status, RestError error) => new() { Failure = new RestFailure(status, error) };

    /// <summary>The body's rows as JSON objects (none for a failure, an empty body, or a body that is not an array).</summary>
    public IReadOnlyList<JsonElement> JsonRows()
    {
        if (Failure is not null || Body is not { } body || Format == BodyFormat.Csv) return [];
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.ValueKind switch
        {
            JsonValueKind.Array => doc.RootElement.EnumerateArray().Select(e => e.Clone()).ToList(),
            JsonValueKind.Object => [doc.RootElement.Clone()],
            _ => [],
        };
    }
}
