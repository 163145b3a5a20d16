// The response stage (Web/Apis/RestResponses): a typed RestResult becomes status, Content-Range and Preference-Applied
// in one place, as PostgREST's Response.hs answers. The endpoint tests prove the same over HTTP on a real PostgreSQL.
using System.Text;
using DbStudio.Core.Rest;
using DbStudio.Web.Apis;

namespace DbStudio.Tests.Unit;

public class RestResponsesTests
{
    private static readonly ReadOnlyMemory<byte> Json = Encoding.UTF8.GetBytes("[]");

    public static TheoryData<string, RestResult, int, string?> Cases => new()
    {
        { "a whole page", new RestResult { Outcome = RestOutcome.Page, Rows = 3, Total = 3, Body = Json }, 200, "0-2/3" },
        { "part of the rows", new RestResult { Outcome = RestOutcome.Page, Rows = 2, Offset = 1, Total = 5, Body = Json }, 206, "1-2/5" },
        { "the last part", new RestResult { Outcome = RestOutcome.Page, Rows = 2, Offset = 3, Total = 5, Body = Json }, 200, "3-4/5" },
        { "no count asked", new RestResult { Outcome = RestOutcome.Page, Rows = 2, Offset = 10, Body = Json }, 200, "10-11/*" },
        { "an empty page", new RestResult { Outcome = RestOutcome.Page, Rows = 0, Total = 0, Body = Json }, 200, "*/0" },
        { "an estimate", new RestResult { Outcome = RestOutcome.Page, Rows = 50, Total = 123_456, TotalIsEstimate = true, Body = Json }, 206, "0-49/123456" },
        { "created", new RestResult { Outcome = RestOutcome.Created, Rows = 2 }, 201, "*/*" },
        { "created, counted", new RestResult { Outcome = RestOutcome.Created, Rows = 2, Total = 2, Body = Json }, 201, "*/2" },
        { "changed, minimal", new RestResult { Outcome = RestOutcome.Changed, Rows = 4, Total = 4 }, 204, "*/4" },
        { "changed, representation", new RestResult { Outcome = RestOutcome.Changed, Rows = 1, Body = Json }, 200, "*/*" },
        { "a function's value", new RestResult { Outcome = RestOutcome.Value, Rows = 1, Body = Json }, 200, "0-0/*" },
        { "a void function", new RestResult { Outcome = RestOutcome.Nothing }, 204, null },
        { "not one object", RestResult.Fail(406, new RestError("PGRST116", "JSON object requested, multiple (or no) rows returned", null, null)), 406, null },
        { "beyond the end", RestResult.Fail(416, new RestError("PGRST103", "Requested range not satisfiable", null, null)), 416, null },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Status_and_content_range_follow_from_the_outcome(string name, RestResult result, int status, string? contentRange)
    {
        Assert.True(RestResponses.Status(result) == status, name);
        Assert.Equal(contentRange, RestResponses.ContentRange(result));
    }

    [Fact]
    public void Preference_applied_lists_what_was_applied_in_postgrests_order()
    {
        Assert.Null(RestResponses.PreferenceApplied(AppliedPreferences.None));
        Assert.Equal("resolution=merge-duplicates, missing=default, return=representation, count=exact, tx=rollback",
            RestResponses.PreferenceApplied(new AppliedPreferences
            {
                Tx = TxPref.Rollback, Count = CountPref.Exact, Return = ReturnPref.Representation, MissingDefault = true,
                Resolution = ResolutionPref.MergeDuplicates,
            }));
        Assert.Equal("return=headers-only, tx=commit", RestResponses.PreferenceApplied(new AppliedPreferences { Return = ReturnPref.HeadersOnly, Tx = TxPref.Commit }));
        Assert.Equal("count=planned, params=single-object", RestResponses.PreferenceApplied(new AppliedPreferences { Count = CountPref.Planned, SingleObject = true }));
    }
}
