// The Range header (PostgREST's items=from-to): a range to the end of the longest table is a page, not an overflow.
using DbStudio.Core.Rest;

namespace DbStudio.Tests.Unit;

public class RestParserRangeTests
{
    [Theory]
    [InlineData("0-9", 0L, 10L)]
    [InlineData("items=5-5", 5L, 1L)]
    [InlineData("0-9223372036854775807", 0L, long.MaxValue)]
    [InlineData("1-9223372036854775807", 1L, long.MaxValue)]
    public void A_range_is_an_offset_and_a_limit(string range, long offset, long limit)
    {
        var req = RestParser.Parse(RestVerb.Get, "todo", [], [], range, null, null);
        Assert.Equal(offset, req.Offset);
        Assert.Equal(limit, req.Limit);
    }
}
