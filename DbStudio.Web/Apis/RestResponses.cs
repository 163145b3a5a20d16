// The response stage of REST and RPC (PostgREST's Response.hs): the one place where a RestResult becomes HTTP — the
// status (200/201/204/206 from the outcome, or the failure's own), Content-Range, Preference-Applied from the
// preferences the executor applied, Location, Content-Type and the body — and where each request's span and duration
// are recorded with that status. RestApi and RpcApi (and so supabase-js's rest/v1) answer through it.
using System.Diagnostics;
using DbStudio.Core;
using DbStudio.Core.Auth;
using DbStudio.Core.Rest;

namespace DbStudio.Web.Apis;

public static class RestResponses
{
    public static int Status(RestResult r) => r.Failure?.Status ?? r.Outcome switch
    {
        RestOutcome.Page => r.Total is long all && r.Offset + r.Rows < all ? 206 : 200,
        RestOutcome.Created => 201,
        RestOutcome.Changed => r.Body is null ? 204 : 200,
        RestOutcome.Value => 200,
        _ => 204,
    };

    /// <summary>`first-last/total` for a page (`*/total` when it is empty), `*/count` for writes, `0-0/*` for a function's value.</summary>
    public static string? ContentRange(RestResult r)
    {
        if (r.Failure is not null) return null;
        var total = r.Total?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "*";
        return r.Outcome switch
        {
            RestOutcome.Page => r.Rows > 0 ? $"{r.Offset}-{r.Offset + r.Rows - 1}/{total}" : $"*/{total}",
            RestOutcome.Created or RestOutcome.Changed => $"*/{total}",
            RestOutcome.Value => "0-0/*",
            _ => null,
        };
    }

    /// <summary>In PostgREST's order: resolution, missing, return, count, tx, then params.</summary>
    public static string? PreferenceApplied(AppliedPreferences a)
    {
        if (a == AppliedPreferences.None) return null; // the usual request: no list made
        var applied = new List<string>();
        if (a.Resolution == ResolutionPref.MergeDuplicates) applied.Add("resolution=merge-duplicates");
        if (a.Resolution == ResolutionPref.IgnoreDuplicates) applied.Add("resolution=ignore-duplicates");
        if (a.MissingDefault) applied.Add("missing=default");
        if (a.Return == ReturnPref.Representation) applied.Add("return=representation");
        if (a.Return == ReturnPref.Minimal) applied.Add("return=minimal");
        if (a.Return == ReturnPref.HeadersOnly) applied.Add("return=headers-only");
        if (a.Count != CountPref.None) applied.Add("count=" + a.Count.ToString().ToLowerInvariant());
        if (a.Tx == TxPref.Rollback) applied.Add("tx=rollback");
        if (a.Tx == TxPref.Commit) applied.Add("tx=commit");
        if (a.SingleObject) applied.Add("params=single-object");
        return applied.Count > 0 ? string.Join(", ", applied) : null;
    }

    public static async Task WriteAsync(HttpContext ctx, RestResult r, bool head)
    {
        if (r.Failure is { } failure) { await RestApi.WriteError(ctx, failure.Status, failure.Error); return; }
        var status = Status(r);
        ctx.Response.StatusCode = status;
        if (ContentRange(r) is { } range) ctx.Response.Headers["Content-Range"] = range;
        if (r.Location is not null) ctx.Response.Headers.Location = r.Location;
        if (PreferenceApplied(r.Applied) is { } applied) ctx.Response.Headers["Preference-Applied"] = applied;
        if (status == 204) return;
        ctx.Response.ContentType = r.Format switch
        {
            BodyFormat.Csv => "text/csv",
            BodyFormat.Object => RestParser.SingularMediaType,
            _ => "application/json",
        } + "; charset=utf-8";
        if (head) return;
        if (r.Body is { } bytes)
        {
            ctx.Response.ContentLength = bytes.Length;
            await ctx.Response.Body.WriteAsync(bytes, ctx.RequestAborted);
        }
    }

    /// <summary>Starts a request's span (`rest GET`, `rest rpc`, …); <see cref="Finish"/> tags it with the status the
    /// request got and records its duration. The span ends when the handler does (the answer written).</summary>
    internal static Activity? StartSpan(string span) => Telemetry.Source.StartActivity(span);

    /// <summary>Records the duration since <paramref name="started"/> and tags the span with the status (no closure, no extra async step per request).</summary>
    internal static void Finish(Activity? activity, long started, string verb, RestCaller caller, string subjectTag, string subject, RestResult result)
    {
        var status = Status(result);
        Telemetry.RestDuration.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds, new TagList
        {
            { "dbstudio.verb", verb }, { "dbstudio.caller", caller.Kind.ToString() }, { "http.response.status_code", status },
        });
        if (activity is not null)
        {
            activity.SetTag("dbstudio.project", caller.ProjectId).SetTag(subjectTag, subject)
                .SetTag("dbstudio.caller", caller.Kind.ToString()).SetTag("http.response.status_code", status);
            if (result.Failure is { } f) activity.SetStatus(status >= 500 ? ActivityStatusCode.Error : ActivityStatusCode.Unset, f.Error.Code);
        }
    }
}
